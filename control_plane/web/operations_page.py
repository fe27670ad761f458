"""The operators' data page (``/operations/data``): workspaces pending deletion with their purge date and final
backup (cancel the deletion, or purge now with a reason), the newest failed backups, and the newest restore drills,
corrupt ones first (drill a backup now).

For staff accounts whose role may purge, delete and drill (operators and admins; :func:`access.operator`), signed in
with the same form and session as everyone; anyone else gets the 404 page, so the page's existence does not leak.
The forms post with the page's CSRF token and go through the services the API uses (audited), then ask the workers
to act; a refusal is the page again with its reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from control_plane.accounts.models import Account
from control_plane.backups import drills
from control_plane.backups import repository as backups_repo
from control_plane.backups.drill_models import BackupDrill
from control_plane.backups.models import BackupState, WorkspaceBackup
from control_plane.backups.periodic import defer_drill
from control_plane.core.authz import Permission, Principal
from control_plane.core.clock import utcnow
from control_plane.core.deps import DbSession
from control_plane.core.problems import NotFound, Problem
from control_plane.core.settings import Settings
from control_plane.reconciler.queue import Cause, defer_reconcile
from control_plane.web.access import operator
from control_plane.web.sessions import Viewer, login_redirect
from control_plane.web.views import FORM_EXPIRED, SettingsDep, form_token_ok, not_found, redirect, render
from control_plane.workspaces import repository as workspaces_repo
from control_plane.workspaces import service as workspaces
from control_plane.workspaces.models import Workspace
from control_plane.workspaces.schemas import PurgeRequest

router = APIRouter(include_in_schema=False)

PAGE = "/operations/data"
LISTED = 20
FormText = Annotated[str, Form(max_length=200)]


@dataclass(frozen=True)
class PendingDeletion:
    """A workspace pending deletion as the page lists it."""

    workspace: Workspace
    address: str
    final_backup: WorkspaceBackup | None  # the newest final backup, whatever its state
    purge_started: bool  # its purge date has passed: it can no longer be cancelled


@dataclass(frozen=True)
class Listed:
    """A failed backup or a drill, with the address of its workspace."""

    item: WorkspaceBackup | BackupDrill
    address: str


def _address(session: Session, settings: Settings, workspace_id: uuid.UUID) -> str:
    ws = session.get(Workspace, workspace_id)
    return f"{ws.slug}.{settings.base_domain}" if ws is not None else str(workspace_id)


def _page(
    request: Request,
    session: Session,
    settings: Settings,
    viewer: Account,
    *,
    alert: str | None = None,
    status_code: int = 200,
) -> Response:
    now = utcnow()
    pending = [
        PendingDeletion(
            ws,
            f"{ws.slug}.{settings.base_domain}",
            backups_repo.final_of(session, ws.id, frozenset(BackupState)),
            workspaces.purge_started(ws, now),
        )
        for ws in workspaces_repo.pending_deletion(session, LISTED)
    ]
    context = {
        "page_url": PAGE,
        "pending": pending,
        "failed": [
            Listed(b, _address(session, settings, b.workspace_id)) for b in backups_repo.newest_failed(session, LISTED)
        ],
        "drills": [Listed(d, _address(session, settings, d.workspace_id)) for d in drills.newest(session, LISTED)],
        "alert": alert,
        "console": "data",
    }
    return render(request, settings, "operations_data.html", context, viewer=viewer, form=True, status_code=status_code)


@router.get(PAGE)
def operations_page(request: Request, session: DbSession, settings: SettingsDep, viewer: Viewer) -> Response:
    """Pending deletions, failed backups and restore drills across all workspaces, with their actions."""
    if viewer is None:
        return login_redirect(PAGE)
    if operator(viewer) is None:
        return not_found(request, settings, viewer)
    return _page(request, session, settings, viewer)


def _id(text: str, what: str) -> uuid.UUID:
    """The id in a form's path; one that is no id names nothing (404, the page with its reason)."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise NotFound(what) from None


def _form_action(
    request: Request,
    session: Session,
    settings: Settings,
    viewer: Account | None,
    csrf_token: str,
    act: Callable[[Principal], Callable[[], None]],
) -> Response:
    """Run a form's action as the operator (committed by the service), then its job, and back to the page; a
    refusal is the page again with its reason."""
    if viewer is None:
        return login_redirect(PAGE)
    principal = operator(viewer)
    if principal is None:
        return not_found(request, settings, viewer)
    if not form_token_ok(request, settings, csrf_token):
        return _page(request, session, settings, viewer, alert=FORM_EXPIRED, status_code=403)
    try:
        then = act(principal)
    except Problem as problem:
        session.rollback()
        detail = problem.detail or problem.title
        return _page(request, session, settings, viewer, alert=detail, status_code=problem.status)
    then()
    return redirect(PAGE)


@router.post(PAGE + "/workspaces/{workspace_id}/cancel-deletion")
def cancel_deletion(
    workspace_id: str,
    request: Request,
    session: DbSession,
    settings: SettingsDep,
    viewer: Viewer,
    csrf_token: FormText = "",
) -> Response:
    """Cancel a workspace's scheduled deletion: it comes back as it was."""

    def act(principal: Principal) -> Callable[[], None]:
        principal.require(Permission.delete_workspace)
        ws = workspaces.cancel_deletion(session, principal, _id(workspace_id, "Workspace"))
        return lambda: defer_reconcile(ws.id, Cause.deletion)

    return _form_action(request, session, settings, viewer, csrf_token, act)


@router.post(PAGE + "/workspaces/{workspace_id}/purge")
def purge(
    workspace_id: str,
    request: Request,
    session: DbSession,
    settings: SettingsDep,
    viewer: Viewer,
    csrf_token: FormText = "",
    reason: Annotated[str, Form()] = "",  # too long is the page with its reason
) -> Response:
    """Purge a workspace pending deletion now (after its final backup); the reason is kept in the audit log."""

    def act(principal: Principal) -> Callable[[], None]:
        principal.require(Permission.purge_workspace)
        try:
            body = PurgeRequest(reason=reason)
        except ValidationError:
            detail = "Say why it cannot wait (1 to 1000 characters)."
            raise Problem(422, "reason-required", "Reason required", detail) from None
        ws = workspaces.purge(session, principal, _id(workspace_id, "Workspace"), body.reason)
        return lambda: defer_reconcile(ws.id, Cause.deletion)

    return _form_action(request, session, settings, viewer, csrf_token, act)


@router.post(PAGE + "/backups/{backup_id}/drill")
def drill_now(
    backup_id: str,
    request: Request,
    session: DbSession,
    settings: SettingsDep,
    viewer: Viewer,
    csrf_token: FormText = "",
) -> Response:
    """Restore-drill a completed backup now (a worker does it; the page lists the outcome)."""

    def act(principal: Principal) -> Callable[[], None]:
        principal.require(Permission.drill_backups)
        backup = drills.drillable(session, _id(backup_id, "Backup"))
        return lambda: defer_drill(backup.id, principal.actor)

    return _form_action(request, session, settings, viewer, csrf_token, act)
