"""Sign-in, sign-out and the list of the signed-in account's workspaces.

Sign-in goes through :func:`control_plane.accounts.service.sign_in`, the one credential check that
the API token exchange uses too: rate limited per client address and per email before the password
is checked, and every failure gets the same 401 answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from control_plane.accounts import service as accounts
from control_plane.accounts.models import Account
from control_plane.core.deps import DbSession
from control_plane.core.problems import Unauthorized
from control_plane.core.ratelimit import RateLimited, client_address
from control_plane.core.settings import Settings
from control_plane.web.access import progress_path, ready_path, workspaces_of
from control_plane.web.billing_page import billing_paths
from control_plane.web.progress import is_ready, is_setting_up
from control_plane.web.sessions import (
    DEFAULT_NEXT,
    Viewer,
    end_session,
    forget_session_cookie,
    login_redirect,
    safe_next,
    start_session,
)
from control_plane.web.views import FORM_EXPIRED, SettingsDep, form_token_ok, message, redirect, render, retry_after
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Workspace

router = APIRouter(include_in_schema=False)

STATE_LABELS = {
    Lifecycle.pending_verification: "Waiting for email confirmation",
    Lifecycle.provisioning: "Being set up",
    Lifecycle.trialing: "Free trial",
    Lifecycle.active: "Active",
    Lifecycle.past_due: "Payment overdue",
    Lifecycle.suspended: "Suspended",
    Lifecycle.hibernated: "Hibernated",
    Lifecycle.pending_deletion: "Being deleted",
    Lifecycle.deleted: "Deleted",
}


def _login_form(
    request: Request,
    settings: Settings,
    *,
    viewer: Account | None,
    email: str = "",
    next_path: str | None = None,
    alert: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """The sign-in form; the email is kept, the password never sent back."""
    context = {"email": email, "next": next_path or "", "alert": alert}
    return render(
        request, settings, "login.html", context, viewer=viewer, form=True, status_code=status_code, headers=headers
    )


@router.get("/login")
def login_page(
    request: Request,
    settings: SettingsDep,
    viewer: Viewer,
    next_path: Annotated[str, Query(alias="next")] = "",  # anything unsafe or too long is dropped
) -> Response:
    """The sign-in form (a browser already signed in goes straight on)."""
    target = safe_next(next_path)
    if viewer is not None:
        return redirect(target or DEFAULT_NEXT)
    return _login_form(request, settings, viewer=None, next_path=target)


@router.post("/login")
def login_submit(
    request: Request,
    session: DbSession,
    settings: SettingsDep,
    viewer: Viewer,
    email: Annotated[str, Form(max_length=400)] = "",
    password: Annotated[str, Form(max_length=400)] = "",
    next_path: Annotated[str, Form(alias="next", max_length=2000)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Check the credentials of a verified account and open a fresh browser session."""
    target = safe_next(next_path)

    def form(alert: str, status_code: int, headers: dict[str, str] | None = None) -> Response:
        return _login_form(
            request,
            settings,
            viewer=viewer,
            email=email,
            next_path=target,
            alert=alert,
            status_code=status_code,
            headers=headers,
        )

    if not form_token_ok(request, settings, csrf_token):
        return form(FORM_EXPIRED, 403)
    try:
        account = accounts.sign_in(session, email=email, password=password, client_address=client_address(request))
    except RateLimited as exc:
        seconds, minutes = retry_after(exc)
        alert = f"Too many sign-in attempts. Please try again in {minutes} minutes."
        return form(alert, 429, {"Retry-After": str(seconds)})
    except Unauthorized as exc:
        return form(f"{exc.detail}.", 401)
    response = redirect(target or DEFAULT_NEXT)
    start_session(session, request, response, account, settings)
    return response


@router.post("/logout")
def logout(
    request: Request,
    session: DbSession,
    settings: SettingsDep,
    viewer: Viewer,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """End the browser session on the server and drop its cookie."""
    if not form_token_ok(request, settings, csrf_token):
        return message(
            request,
            settings,
            "You are still signed in",
            "This sign-out form expired or did not come from this site. Use Sign out again.",
            viewer=viewer,
            status_code=403,
        )
    end_session(session, request)
    session.commit()
    response = redirect("/login")
    forget_session_cookie(response, settings)
    return response


@dataclass(frozen=True)
class Listed:
    """One workspace as the list shows it."""

    workspace: Workspace
    address: str
    state: str
    open_url: str | None  # the workspace itself, once it answers
    ready_url: str | None  # where it is and how to sign in to it
    progress_url: str | None  # while it is being set up
    billing_url: str | None  # its organization's billing page, for those who manage it


def _listed(ws: Workspace, base_domain: str, billing_url: str | None) -> Listed:
    ready = is_ready(ws)
    return Listed(
        workspace=ws,
        address=f"{ws.slug}.{base_domain}",
        state=STATE_LABELS.get(ws.lifecycle_state, ws.lifecycle_state.value),
        open_url=ws.endpoint_url if ready else None,
        ready_url=ready_path(ws) if ready else None,
        progress_url=progress_path(ws) if is_setting_up(ws) else None,
        billing_url=billing_url,
    )


@router.get("/workspaces")
def workspace_list(request: Request, session: DbSession, settings: SettingsDep, viewer: Viewer) -> Response:
    """The signed-in account's workspaces across its organizations, newest first."""
    if viewer is None:
        return login_redirect(DEFAULT_NEXT)
    billing = billing_paths(session, viewer)
    workspaces = workspaces_of(session, viewer)
    listed = [_listed(ws, settings.base_domain, billing.get(ws.organization_id)) for ws in workspaces]
    return render(request, settings, "workspaces.html", {"workspaces": listed}, viewer=viewer)
