"""The delete and cancel-deletion forms of the workspaces page, for those who may delete a workspace (its
organization's owners).

Deleting asks to type the workspace's address and says when it will be purged; a workspace pending deletion shows
its purge date and a "Cancel deletion" button until then. Both are CSRF-protected forms that go through the
workspaces service (audited) and ask the workers to act; a refusal re-renders the page with the reason. Another
organization's workspace, or one the viewer may not delete, is the 404 page.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from control_plane.core.authz import Principal
from control_plane.core.deps import DbSession
from control_plane.core.problems import Problem
from control_plane.reconciler.queue import Cause, defer_reconcile
from control_plane.web.access import deleter, own_workspace
from control_plane.web.sessions import DEFAULT_NEXT, Viewer, login_redirect
from control_plane.web.signin import workspaces_page
from control_plane.web.views import FORM_EXPIRED, SettingsDep, form_token_ok, not_found, redirect
from control_plane.workspaces import service
from control_plane.workspaces.models import Workspace

router = APIRouter(include_in_schema=False)


def _act(
    request: Request,
    session: DbSession,
    settings: SettingsDep,
    viewer: Viewer,
    workspace_id: str,
    csrf_token: str,
    act: Callable[[Principal, Workspace], None],
) -> Response:
    """Run a form's action on the viewer's workspace, then back to the list (with the reason when refused)."""
    if viewer is None:
        return login_redirect(DEFAULT_NEXT)
    ws = own_workspace(session, viewer, workspace_id)
    principal = None if ws is None else deleter(session, viewer, ws)
    if ws is None or principal is None:
        return not_found(request, settings, viewer)
    if not form_token_ok(request, settings, csrf_token):
        return workspaces_page(request, session, settings, viewer, alert=FORM_EXPIRED, status_code=403)
    try:
        act(principal, ws)
    except Problem as problem:
        session.rollback()
        detail = problem.detail or problem.title
        return workspaces_page(request, session, settings, viewer, alert=detail, status_code=problem.status)
    defer_reconcile(ws.id, Cause.deletion)
    return redirect("/workspaces")


@router.post("/workspaces/{workspace_id}/delete")
def delete(
    workspace_id: str,
    request: Request,
    session: DbSession,
    settings: SettingsDep,
    viewer: Viewer,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    confirm_address: Annotated[str, Form()] = "",  # anything but the address is the page with its reason
) -> Response:
    """Schedule the workspace's deletion once its address is typed (its server stops; purged at the date shown)."""

    def act(principal: Principal, ws: Workspace) -> None:
        address = f"{ws.slug}.{settings.base_domain}"
        if confirm_address.strip().lower() != address:
            raise Problem(422, "confirmation-mismatch", "Not confirmed", f"Type {address} to delete this workspace.")
        service.request_deletion(session, principal, ws.id)

    return _act(request, session, settings, viewer, workspace_id, csrf_token, act)


@router.post("/workspaces/{workspace_id}/cancel-deletion")
def cancel_deletion(
    workspace_id: str,
    request: Request,
    session: DbSession,
    settings: SettingsDep,
    viewer: Viewer,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Cancel the workspace's scheduled deletion: it comes back as it was."""

    def act(principal: Principal, ws: Workspace) -> None:
        service.cancel_deletion(session, principal, ws.id)

    return _act(request, session, settings, viewer, workspace_id, csrf_token, act)
