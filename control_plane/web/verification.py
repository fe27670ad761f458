"""The email verification link: confirms the email, starts provisioning, and its first use opens a browser session."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from control_plane.accounts import service as accounts
from control_plane.accounts.models import Account
from control_plane.core.deps import DbSession
from control_plane.core.settings import Settings
from control_plane.reconciler.queue import Cause, defer_reconcile
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
    """Confirm the email and show the workspace; only the link's first use opens a browser session.

    A later use leads on only a browser already signed in to that account; any other gets no session.
    """
    if not token or len(token) > 200:
        return _verify_failed(request, settings, viewer, "The link is incomplete. Copy the whole link from the mail.")
    try:
        verified = accounts.verify_email(session, token)
    except accounts.VerificationInvalid:
        return _verify_failed(
            request, settings, viewer, "This link is unknown or has expired. Sign up again to get a new one."
        )
    for ws in verified.started:
        defer_reconcile(ws.id, Cause.signup)
    account = verified.account
    target: Workspace | None = next(iter(verified.started), None) or next(iter(workspaces_of(session, account)), None)
    signed_in = viewer is not None and viewer.id == account.id
    if not verified.first_use and not signed_in:  # a used link (in a mailbox, a history, a log) signs nobody in
        text = "Your email is already confirmed. Sign in to see your workspaces."
        return message(request, settings, "Email confirmed", text, viewer=viewer, login_link=True)
    response: Response
    if target is None:
        response = message(request, settings, "Email confirmed", "Your email is confirmed.", viewer=account)
    else:
        response = redirect(progress_path(target))
    if verified.first_use:
        start_session(session, request, response, account, settings)
    return response
