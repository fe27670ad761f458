"""Provisioning progress and the ready page of the viewer's own workspaces (another's is a 404)."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session

from control_plane.accounts.models import Account
from control_plane.core.deps import DbSession
from control_plane.core.settings import Settings
from control_plane.web.access import own_workspace, progress_path, ready_path, status_path
from control_plane.web.progress import is_ready, progress_of
from control_plane.web.sessions import Viewer, login_redirect
from control_plane.web.views import (
    SettingsDep,
    not_found,
    redirect,
    render,
)
from control_plane.workspaces.models import Workspace

router = APIRouter(include_in_schema=False)


def _workspace_or_refusal(
    request: Request, session: Session, settings: Settings, viewer: Account | None, workspace_id: str
) -> Workspace | Response:
    """The viewer's workspace; else sign in first (no session) or 404 (not the viewer's, or unknown)."""
    if viewer is None:
        return login_redirect(request.url.path)
    ws = own_workspace(session, viewer, workspace_id)
    return not_found(request, settings, viewer) if ws is None else ws


@router.get("/signup/workspaces/{workspace_id}/progress")
def progress_page(
    workspace_id: str, request: Request, session: DbSession, settings: SettingsDep, viewer: Viewer
) -> Response:
    """Provisioning steps as they complete (polls the status endpoint; meta refresh without JS)."""
    ws = _workspace_or_refusal(request, session, settings, viewer, workspace_id)
    if isinstance(ws, Response):
        return ws
    progress = progress_of(ws, settings.base_domain)
    if progress.ready:
        return redirect(ready_path(ws))
    context = {"workspace": ws, "progress": progress, "status_url": status_path(ws), "ready_url": ready_path(ws)}
    return render(request, settings, "progress.html", context, viewer=viewer)


@router.get("/signup/workspaces/{workspace_id}/status")
def progress_status(workspace_id: str, session: DbSession, settings: SettingsDep, viewer: Viewer) -> Response:
    """The progress as JSON for the page's polling.

    Without a session it sends the browser to sign in and come back to the progress page; a
    workspace that is not the viewer's is a 404.
    """
    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    if viewer is None:
        return login_redirect(f"/signup/workspaces/{quote(workspace_id, safe='')}/progress")
    ws = own_workspace(session, viewer, workspace_id)
    if ws is None:
        return JSONResponse({"error": "not found"}, status_code=404, headers=headers)
    body = progress_of(ws, settings.base_domain).as_json()
    body["ready_url"] = ready_path(ws) if body["ready"] else None
    return JSONResponse(body, headers=headers)


@router.get("/signup/workspaces/{workspace_id}/ready")
def ready_page(
    workspace_id: str, request: Request, session: DbSession, settings: SettingsDep, viewer: Viewer
) -> Response:
    """Where the workspace is and how to sign in to it."""
    ws = _workspace_or_refusal(request, session, settings, viewer, workspace_id)
    if isinstance(ws, Response):
        return ws
    if not is_ready(ws):
        return redirect(progress_path(ws))
    assert viewer is not None
    context = {
        "workspace": ws,
        "url": ws.endpoint_url,
        "browser_url": (ws.outputs or {}).get("subdomain_url"),
        "login": ws.initial_admin_email or viewer.email,
    }
    return render(request, settings, "ready.html", context, viewer=viewer)
