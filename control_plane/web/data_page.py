"""A workspace's data page, for its organization's members: backups (back up now, restore into a new workspace or in
place) and exports (export now, download links).

The forms post with the page's CSRF token and act as the viewer in the workspace's organization, through the same
services as the API, with the API's permissions (a role that may not read backups or exports sees none, and one
that may not act is refused with the reason). Another organization's workspace is the 404 page.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from control_plane.accounts import repository as accounts_repo
from control_plane.accounts.models import Account
from control_plane.backups import service as backups
from control_plane.backups.models import OPEN_BACKUP_STATES
from control_plane.backups.schemas import CloneRestore, InPlaceRestore
from control_plane.backups.tasks import defer_backup
from control_plane.core.authz import GRANTS, Permission, Principal
from control_plane.core.deps import DbSession
from control_plane.core.problems import NotFound, Problem
from control_plane.core.settings import Settings
from control_plane.exports import service as exports
from control_plane.exports.models import OPEN_STATES as EXPORT_OPEN_STATES
from control_plane.exports.tasks import defer_export
from control_plane.reconciler.queue import Cause, defer_reconcile
from control_plane.web.access import own_workspace
from control_plane.web.sessions import Viewer, login_redirect
from control_plane.web.views import FORM_EXPIRED, SettingsDep, form_token_ok, not_found, redirect, render
from control_plane.workspaces.models import Workspace

router = APIRouter(include_in_schema=False)

LISTED = 20
FormText = Annotated[str, Form(max_length=200)]
AddressText = Annotated[str, Form()]  # typed by a person: too long is the page with its reason (the schema's limit)


def data_path(ws: Workspace) -> str:
    """The workspace's data page."""
    return f"/workspaces/{ws.id}/data"


def _principal(session: Session, viewer: Account, ws: Workspace) -> Principal:
    role = accounts_repo.membership_role(session, viewer.id, ws.organization_id)
    assert role is not None  # own_workspace found it among the viewer's organizations
    return Principal(account_id=viewer.id, role=role, organization_id=ws.organization_id)


def _page(
    request: Request,
    session: Session,
    settings: Settings,
    viewer: Account,
    ws: Workspace,
    *,
    alert: str | None = None,
    status_code: int = 200,
) -> Response:
    principal = _principal(session, viewer, ws)
    may_read_backups = principal.role in GRANTS[Permission.read_backups]
    may_export = principal.role in GRANTS[Permission.export_workspace]
    listed_backups = backups.of_workspace(session, principal, ws.id, LISTED) if may_read_backups else []
    listed_exports = exports.of_workspace(session, principal, ws.id, LISTED) if may_export else []
    context = {
        "workspace": ws,
        "address": f"{ws.slug}.{settings.base_domain}",
        "page_url": data_path(ws),
        "backups": listed_backups,
        "may_back_up": principal.role in GRANTS[Permission.back_up_workspace],
        "may_restore": principal.role in GRANTS[Permission.restore_workspace],
        "may_read_backups": may_read_backups,
        "may_export": may_export,
        "exports": [(export, exports.download_link(export)) for export in listed_exports],
        "alert": alert,
        "busy": any(b.state in OPEN_BACKUP_STATES for b in listed_backups)
        or any(e.state in EXPORT_OPEN_STATES for e in listed_exports),
    }
    return render(request, settings, "workspace_data.html", context, viewer=viewer, form=True, status_code=status_code)


@router.get("/workspaces/{workspace_id}/data")
def data_page(
    workspace_id: str, request: Request, session: DbSession, settings: SettingsDep, viewer: Viewer
) -> Response:
    """The workspace's backups and exports, with their actions."""
    if viewer is None:
        return login_redirect(request.url.path)
    ws = own_workspace(session, viewer, workspace_id)
    if ws is None:
        return not_found(request, settings, viewer)
    return _page(request, session, settings, viewer, ws)


def _form_action(
    request: Request,
    session: Session,
    settings: Settings,
    viewer: Account | None,
    workspace_id: str,
    csrf_token: str,
    act: Callable[[Principal, Workspace], Callable[[], None]],
) -> Response:
    """Run a form's action as the viewer (committed, then its job deferred) and go back to the page; a refusal is
    the page again with its reason."""
    if viewer is None:
        return login_redirect(f"/workspaces/{workspace_id}/data")
    ws = own_workspace(session, viewer, workspace_id)
    if ws is None:
        return not_found(request, settings, viewer)
    if not form_token_ok(request, settings, csrf_token):
        return _page(request, session, settings, viewer, ws, alert=FORM_EXPIRED, status_code=403)
    try:
        then = act(_principal(session, viewer, ws), ws)
        session.commit()
    except Problem as problem:
        session.rollback()
        return _page(
            request, session, settings, viewer, ws, alert=problem.detail or problem.title, status_code=problem.status
        )
    then()
    return redirect(data_path(ws))


@router.post("/workspaces/{workspace_id}/data/backups")
def back_up_now(
    workspace_id: str,
    request: Request,
    session: DbSession,
    settings: SettingsDep,
    viewer: Viewer,
    csrf_token: FormText = "",
) -> Response:
    """Back the workspace up now."""

    def act(principal: Principal, ws: Workspace) -> Callable[[], None]:
        principal.require(Permission.back_up_workspace)
        backup = backups.request(session, principal, ws.id)
        return lambda: defer_backup(backup.id, ws.id)

    return _form_action(request, session, settings, viewer, workspace_id, csrf_token, act)


@router.post("/workspaces/{workspace_id}/data/exports")
def export_now(
    workspace_id: str,
    request: Request,
    session: DbSession,
    settings: SettingsDep,
    viewer: Viewer,
    csrf_token: FormText = "",
) -> Response:
    """Export the workspace now (the page lists the export; its download link appears once it is complete)."""

    def act(principal: Principal, ws: Workspace) -> Callable[[], None]:
        principal.require(Permission.export_workspace)
        export = exports.request(session, principal, ws.id)
        return lambda: defer_export(export.id, ws.id)

    return _form_action(request, session, settings, viewer, workspace_id, csrf_token, act)


def _slug_of(address: str, settings: Settings) -> str:
    """The slug of an address typed as ``<slug>`` or ``<slug>.<base domain>``."""
    address = address.strip().lower()
    suffix = f".{settings.base_domain}"
    return address[: -len(suffix)] if address.endswith(suffix) else address


@router.post("/workspaces/{workspace_id}/data/backups/{backup_id}/restore")
def restore(
    workspace_id: str,
    backup_id: str,
    request: Request,
    session: DbSession,
    settings: SettingsDep,
    viewer: Viewer,
    csrf_token: FormText = "",
    target: AddressText = "",
    confirm: AddressText = "",
) -> Response:
    """Restore a backup into a new workspace at the address ``target`` (``<slug>``), or in place when ``confirm``
    is the workspace's own address typed out. A backup id that is no id is the page with "not found"; an address
    too long, the page with its reason."""

    def act(principal: Principal, ws: Workspace) -> Callable[[], None]:
        principal.require(Permission.restore_workspace)
        try:
            backup = uuid.UUID(backup_id)
        except ValueError:
            raise NotFound("Backup") from None
        try:
            body = (
                InPlaceRestore(mode="in_place", confirm=_slug_of(confirm, settings))
                if confirm
                else CloneRestore(mode="clone", slug=_slug_of(target, settings))
            )
        except ValidationError:
            raise Problem(422, "invalid-address", "Invalid address", "Type the new workspace's address") from None
        restore = backups.request_restore(session, principal, ws.id, backup, body)
        return lambda: defer_reconcile(restore.target_workspace_id, Cause.restore)

    return _form_action(request, session, settings, viewer, workspace_id, csrf_token, act)
