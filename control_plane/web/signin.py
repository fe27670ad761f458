"""Sign-in, sign-out and the list of the signed-in account's workspaces (with their delete and cancel-deletion
forms, for those who may delete them: :mod:`control_plane.web.deletion_pages`).

Sign-in goes through :func:`control_plane.accounts.service.sign_in`, the one credential check that
the API token exchange uses too: rate limited per client address and per email before the password
is checked, and every failure gets the same 401 answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from control_plane.accounts import service as accounts
from control_plane.accounts.models import Account
from control_plane.core.clock import utcnow
from control_plane.core.deps import DbSession
from control_plane.core.problems import Unauthorized
from control_plane.core.ratelimit import RateLimited, client_address
from control_plane.core.settings import Settings
from control_plane.web.access import (
    cancel_deletion_path,
    delete_path,
    deleter,
    progress_path,
    ready_path,
    workspaces_of,
)
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
from control_plane.workspaces import service as workspaces
from control_plane.workspaces.lifecycle import TRANSITIONS, Lifecycle
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
    Lifecycle.pending_deletion: "Scheduled for deletion",
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
    delete_url: str | None  # the delete form, for those who may delete it
    purged_if_deleted: datetime | None  # when it would be purged if deleted now
    cancel_deletion_url: str | None  # while it is pending deletion and its purge has not begun


def _listed(session: Session, settings: Settings, viewer: Account, ws: Workspace, billing_url: str | None) -> Listed:
    ready = is_ready(ws)
    now = utcnow()
    may_delete = deleter(session, viewer, ws) is not None
    deletable = may_delete and Lifecycle.pending_deletion in TRANSITIONS[ws.lifecycle_state]
    cancellable = (
        may_delete and ws.lifecycle_state == Lifecycle.pending_deletion and not workspaces.purge_started(ws, now)
    )
    return Listed(
        workspace=ws,
        address=f"{ws.slug}.{settings.base_domain}",
        state=STATE_LABELS.get(ws.lifecycle_state, ws.lifecycle_state.value),
        open_url=ws.endpoint_url if ready else None,
        ready_url=ready_path(ws) if ready else None,
        progress_url=progress_path(ws) if is_setting_up(ws) else None,
        billing_url=billing_url,
        delete_url=delete_path(ws) if deletable else None,
        purged_if_deleted=workspaces.purge_date(settings, ws, now) if deletable else None,
        cancel_deletion_url=cancel_deletion_path(ws) if cancellable else None,
    )


def workspaces_page(
    request: Request,
    session: Session,
    settings: Settings,
    viewer: Account,
    *,
    alert: str | None = None,
    status_code: int = 200,
) -> Response:
    """The viewer's workspaces across its organizations, newest first (with ``alert`` when a form was refused)."""
    billing = billing_paths(session, viewer)
    listed = [
        _listed(session, settings, viewer, ws, billing.get(ws.organization_id)) for ws in workspaces_of(session, viewer)
    ]
    context = {"workspaces": listed, "alert": alert}
    return render(request, settings, "workspaces.html", context, viewer=viewer, status_code=status_code)


@router.get("/workspaces")
def workspace_list(request: Request, session: DbSession, settings: SettingsDep, viewer: Viewer) -> Response:
    """The signed-in account's workspaces across its organizations, newest first."""
    if viewer is None:
        return login_redirect(DEFAULT_NEXT)
    return workspaces_page(request, session, settings, viewer)
