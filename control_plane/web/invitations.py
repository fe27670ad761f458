"""The invitation link: join an organization with a new account (the link proves the email) or a signed-in one.

Every opening of a link counts against a per-client-address limit before the token is looked up, and an
unknown, expired, revoked or used link gets one answer that says nothing about any account.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from control_plane.accounts import repository as accounts_repo
from control_plane.accounts.models import Account
from control_plane.accounts.schemas import MAX_PASSWORD, MIN_PASSWORD
from control_plane.core.authz import Role
from control_plane.core.deps import DbSession
from control_plane.core.ratelimit import RateLimited, client_address
from control_plane.core.security import has_password
from control_plane.core.settings import Settings
from control_plane.organizations import service as organizations
from control_plane.organizations.models import Invitation, Organization
from control_plane.reconciler.queue import Cause, defer_reconcile
from control_plane.web.sessions import DEFAULT_NEXT, Viewer, start_session
from control_plane.web.views import FORM_EXPIRED, SettingsDep, form_token_ok, message, redirect, render, retry_after

router = APIRouter(include_in_schema=False)

ROLE_LABELS = {Role.owner: "Owner", Role.billing: "Billing member (plans, invoices and payment)"}


def _opened(
    request: Request, session: Session, settings: Settings, viewer: Account | None, token: str, *, for_update: bool
) -> Invitation | Response:
    """The link's invitation, or the page refusing it (rate limited, or not usable)."""
    try:
        return organizations.usable_invitation(session, token, client_address(request), for_update=for_update)
    except RateLimited as exc:
        seconds, minutes = retry_after(exc)
        text = f"Too many invitation links were opened from your network. Please try again in {minutes} minutes."
        response = message(request, settings, "Too many attempts", text, viewer=viewer, status_code=429)
        response.headers["Retry-After"] = str(seconds)
        return response
    except organizations.InvitationInvalid:
        text = "This link is unknown, has expired or was used already. Ask for a new invitation."
        return message(request, settings, "This invitation does not work", text, viewer=viewer, status_code=404)


def _page(
    request: Request,
    session: Session,
    settings: Settings,
    viewer: Account | None,
    invitation: Invitation,
    *,
    errors: dict[str, str] | None = None,
    alert: str | None = None,
    status_code: int = 200,
) -> Response:
    """The organization and role, then a password form (no account yet), the accept button (signed in as
    the invited email) or the way to sign in as it."""
    organization = session.get(Organization, invitation.organization_id)
    assert organization is not None
    account = accounts_repo.account_by_email(session, invitation.email)
    if account is None or not has_password(account.password_hash):
        mode = "new"
    elif viewer is not None and viewer.id == account.id:
        mode = "accept"
    else:
        mode = "sign_in"
    path = request.url.path
    context = {
        "organization": organization.name,
        "role": ROLE_LABELS[invitation.role],
        "email": invitation.email,
        "mode": mode,
        "action": path,
        "login_url": f"/login?next={quote(path, safe='/')}",
        "errors": errors or {},
        "alert": alert,
        "min_password": MIN_PASSWORD,
        "max_password": MAX_PASSWORD,
    }
    return render(request, settings, "invitation.html", context, viewer=viewer, form=True, status_code=status_code)


def _bad_password(
    request: Request, session: Session, settings: Settings, viewer: Account | None, invitation: Invitation
) -> Response:
    error = f"Use a password of {MIN_PASSWORD} to {MAX_PASSWORD} characters."
    return _page(request, session, settings, viewer, invitation, errors={"password": error}, status_code=422)


def _set_first_password(
    request: Request,
    session: Session,
    settings: Settings,
    viewer: Account | None,
    invitation: Invitation,
    account: Account,
    password: str,
) -> Response:
    """The account sales made for the invited email takes its first password and joins; its workspaces waiting for
    their initial admin get it (their reconciles hand the owner over); a browser session starts."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        return _bad_password(request, session, settings, viewer, invitation)
    for workspace_id in organizations.accept_setting_password(session, invitation, account, password):
        defer_reconcile(workspace_id, Cause.signup)
    response = redirect(DEFAULT_NEXT)
    start_session(session, request, response, account, settings)
    return response


@router.get("/invitations/{token}")
def invitation_page(
    token: str, request: Request, session: DbSession, settings: SettingsDep, viewer: Viewer
) -> Response:
    """What the invitation grants, and how to accept it."""
    invitation = _opened(request, session, settings, viewer, token, for_update=False)
    if isinstance(invitation, Response):
        return invitation
    return _page(request, session, settings, viewer, invitation)


@router.post("/invitations/{token}")
def invitation_accept(
    token: str,
    request: Request,
    session: DbSession,
    settings: SettingsDep,
    viewer: Viewer,
    password: Annotated[str, Form(max_length=400)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Accept: with a new account (the password sets it up and a browser session starts), or for the
    signed-in account if it has the invited email; then on to the workspaces."""
    invitation = _opened(request, session, settings, viewer, token, for_update=True)
    if isinstance(invitation, Response):
        return invitation
    if not form_token_ok(request, settings, csrf_token):
        return _page(request, session, settings, viewer, invitation, alert=FORM_EXPIRED, status_code=403)
    account = accounts_repo.account_by_email(session, invitation.email)
    if account is not None and not has_password(account.password_hash):
        return _set_first_password(request, session, settings, viewer, invitation, account, password)
    if account is not None:
        if viewer is None or viewer.id != account.id:
            alert = f"Sign in as {invitation.email} to accept this invitation."
            return _page(request, session, settings, viewer, invitation, alert=alert, status_code=403)
        organizations.accept(session, invitation, viewer)
        return redirect(DEFAULT_NEXT)
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        return _bad_password(request, session, settings, viewer, invitation)
    try:
        account = organizations.accept_as_new_account(session, invitation, password)
    except IntegrityError:  # someone signed up with this email meanwhile
        session.rollback()
        text = "An account with this email was just created. Open the invitation link again to sign in and join."
        return message(request, settings, "Please try again", text, viewer=viewer, status_code=409)
    response = redirect(DEFAULT_NEXT)
    start_session(session, request, response, account, settings)
    return response
