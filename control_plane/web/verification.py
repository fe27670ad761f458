"""The email verification link: confirms the email, opens a browser session, starts provisioning."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select

from control_plane.accounts import service as accounts
from control_plane.accounts.models import Account, EmailVerification
from control_plane.core.clock import utcnow
from control_plane.core.deps import DbSession
from control_plane.core.security import token_digest
from control_plane.core.settings import Settings
from control_plane.reconciler.queue import defer_reconcile
from control_plane.web.access import progress_path, workspaces_of
from control_plane.web.sessions import Viewer, start_session
from control_plane.web.views import (
    SettingsDep,
    message,
    redirect,
)
from control_plane.workspaces.models import Workspace

router = APIRouter(include_in_schema=False)


def _verify_failed(request: Request, settings: Settings, viewer: Account | None, text: str) -> Response:
    return message(request, settings, "This link does not work", text, viewer=viewer, status_code=400, signup_link=True)


@router.get("/signup/verify")
def verify(request: Request, session: DbSession, settings: SettingsDep, viewer: Viewer, token: str = "") -> Response:
    """Confirm the email, open a browser session and show the workspace being provisioned."""
    if not token or len(token) > 200:
        return _verify_failed(request, settings, viewer, "The link is incomplete. Copy the whole link from the mail.")
    try:
        account, started = accounts.verify_email(session, token)
    except accounts.VerificationInvalid:
        return _verify_failed(
            request, settings, viewer, "This link is unknown or has expired. Sign up again to get a new one."
        )
    for ws in started:
        defer_reconcile(ws.id)
    # A link keeps confirming the email forever, but it signs the browser in only while valid.
    record = session.scalars(
        select(EmailVerification).where(EmailVerification.token_digest == token_digest(token))
    ).one()
    if record.expires_at is not None and record.expires_at < utcnow():
        return _verify_failed(
            request, settings, viewer, "Your email is confirmed, but this link has expired and cannot sign you in."
        )
    # A link used before started nothing: show the account's newest workspace.
    target: Workspace | None = started[0] if started else next(iter(workspaces_of(session, account)), None)
    response: Response
    if target is None:
        response = message(request, settings, "Email confirmed", "Your email is confirmed.", viewer=account)
    else:
        response = redirect(progress_path(target))
    start_session(session, request, response, account, settings)
    return response
