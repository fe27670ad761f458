"""Workspace routes under /api/v1 (thin: parse, authorize, call the service)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, WebSocket
from fastapi.responses import JSONResponse, RedirectResponse

from control_plane.core.authz import Permission
from control_plane.core.deps import DbSession, IdempotencyKey
from control_plane.core.idempotency import run_once
from control_plane.core.problems import InvalidInput, NotFound, problem_responses
from control_plane.reconciler.queue import Cause, defer_reconcile
from control_plane.workspaces import maintenance, service
from control_plane.workspaces.auth import (
    WorkspaceCreator,
    WorkspaceDeleter,
    WorkspaceHibernator,
    WorkspacePurger,
    WorkspaceReader,
    WorkspaceScheduler,
    WorkspaceWaker,
)
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Tier
from control_plane.workspaces.repository import WorkspaceFilter
from control_plane.workspaces.schemas import (
    MaintenanceWindow,
    PurgeRequest,
    SlugAvailability,
    WorkspaceCreate,
    WorkspaceOut,
    WorkspacePage,
    workspace_out,
)
from control_plane.workspaces.slugs import check_format
from control_plane.workspaces.waking import BeingRestored, Serving, WakeFailed, Waker, being_restored, still_waking

router = APIRouter(prefix="/api/v1", tags=["workspaces"])
# Where a sleeping workspace's Ingress sends its requests (Kubernetes); not part of the API.
wake_router = APIRouter(include_in_schema=False)
WAKE_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
STALE_ROUTE_PAUSE_SECONDS = 1.0
SLUG_SEARCH = r"^[A-Za-z0-9-]+$"  # slug characters (any case): no LIKE wildcard reaches the query
WEBSOCKET_SERVICE_RESTART = 1012


@router.get("/workspace-slugs/{slug}/availability", response_model=SlugAvailability)
def slug_availability(slug: str, session: DbSession) -> SlugAvailability:
    """Whether an address is valid and free (no authentication: the signup form asks it)."""
    return service.availability(session, slug)


@router.post(
    "/workspaces", status_code=201, response_model=WorkspaceOut, responses=problem_responses(401, 403, 404, 409, 503)
)
def create_workspace(
    body: WorkspaceCreate, session: DbSession, principal: WorkspaceCreator, key: IdempotencyKey
) -> JSONResponse:
    """Create a workspace and start provisioning it. Only sales and admins create Enterprise ones (403 otherwise).
    Its initial admin is the caller when an owner creates it, else (staff) the organization's first owner: staff
    never become admins inside a customer's workspace."""
    if body.tier == Tier.enterprise:
        principal.require(Permission.create_enterprise_workspace)
    organization_id = body.organization_id if principal.is_staff else principal.organization_id
    if organization_id is None:
        raise InvalidInput("organization_id", "is required for staff tokens")
    if not principal.can_see(organization_id):
        raise NotFound("Organization")
    initial_admin = service.initial_admin_for(session, principal, organization_id)

    def create() -> tuple[int, object]:
        ws = service.new_workspace(
            session,
            organization_id=organization_id,
            slug=body.slug,
            display_name=body.display_name,
            tier=body.tier,
            region=body.region,
            state=Lifecycle.provisioning,
            actor=principal.actor,
            initial_admin=initial_admin,
        )
        return 201, workspace_out(ws).model_dump(mode="json")

    outcome = run_once(session, f"workspaces:{principal.account_id}", key, body.model_dump(mode="json"), create)
    if not outcome.replayed:
        defer_reconcile(uuid.UUID(outcome.body["id"]), Cause.signup)
    return JSONResponse(outcome.body, status_code=outcome.status_code)


@router.get("/workspaces", response_model=WorkspacePage, responses=problem_responses(401, 403))
def list_workspaces(
    session: DbSession,
    principal: WorkspaceReader,
    organization_id: uuid.UUID | None = None,
    state: Lifecycle | None = None,
    tier: Tier | None = None,
    cell: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    desired_release: Annotated[
        str | None, Query(min_length=1, max_length=50, description="The release the workspace should run.")
    ] = None,
    observed_release: Annotated[
        str | None, Query(min_length=1, max_length=50, description="The release the workspace was last seen running.")
    ] = None,
    slug_prefix: Annotated[
        str | None, Query(min_length=1, max_length=63, pattern=SLUG_SEARCH, description="Slugs starting with this.")
    ] = None,
    slug_contains: Annotated[
        str | None,
        Query(min_length=3, max_length=63, pattern=SLUG_SEARCH, description="Slugs containing this (3+ characters)."),
    ] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 50,
) -> WorkspacePage:
    """Workspaces the caller may see that match every filter given, oldest first, keyset-paginated by ``cursor``."""
    filters = WorkspaceFilter(
        organization_id=organization_id,
        state=state,
        tier=tier,
        cell=cell,
        desired_release=desired_release,
        observed_release=observed_release,
        slug_prefix=slug_prefix.lower() if slug_prefix else None,
        slug_contains=slug_contains.lower() if slug_contains else None,
    )
    rows, next_cursor = service.list_page(session, principal, filters, cursor=cursor, limit=limit)
    return WorkspacePage(items=[workspace_out(ws) for ws in rows], next_cursor=next_cursor)


@router.get("/workspaces/{workspace_id}", response_model=WorkspaceOut, responses=problem_responses(401, 403, 404))
def get_workspace(workspace_id: uuid.UUID, session: DbSession, principal: WorkspaceReader) -> WorkspaceOut:
    """One workspace with its conditions and reconcile status."""
    return workspace_out(service.visible(session, principal, workspace_id))


@router.delete(
    "/workspaces/{workspace_id}",
    status_code=202,
    response_model=WorkspaceOut,
    responses=problem_responses(401, 403, 404, 409),
)
def delete_workspace(workspace_id: uuid.UUID, session: DbSession, principal: WorkspaceDeleter) -> WorkspaceOut:
    """Schedule the deletion: ``pending_deletion`` until ``purge_after`` (the server stops, a final backup is taken;
    cancellable until then), then the reconciler tears the workspace down and marks it deleted."""
    ws = service.request_deletion(session, principal, workspace_id)
    defer_reconcile(ws.id, Cause.deletion)
    return workspace_out(ws)


@router.post(
    "/workspaces/{workspace_id}/cancel-deletion",
    status_code=202,
    response_model=WorkspaceOut,
    responses=problem_responses(401, 403, 404, 409),
)
def cancel_workspace_deletion(workspace_id: uuid.UUID, session: DbSession, principal: WorkspaceDeleter) -> WorkspaceOut:
    """Cancel a scheduled deletion (409 once the purge has begun): back to the state it was deleted from; the
    reconciler starts the workspace again."""
    ws = service.cancel_deletion(session, principal, workspace_id)
    defer_reconcile(ws.id, Cause.deletion)
    return workspace_out(ws)


@router.post(
    "/workspaces/{workspace_id}/purge",
    status_code=202,
    response_model=WorkspaceOut,
    responses=problem_responses(401, 403, 404, 409, 422),
)
def purge_workspace(
    workspace_id: uuid.UUID, body: PurgeRequest, session: DbSession, principal: WorkspacePurger
) -> WorkspaceOut:
    """End a workspace's grace period now, with a reason (operators and admins; audited): the reconciler takes its
    final backup if it has none yet and tears it down."""
    ws = service.purge(session, principal, workspace_id, body.reason)
    defer_reconcile(ws.id, Cause.deletion)
    return workspace_out(ws)


@router.post(
    "/workspaces/{workspace_id}/hibernate",
    status_code=202,
    response_model=WorkspaceOut,
    responses=problem_responses(401, 403, 404, 409),
)
def hibernate_workspace(workspace_id: uuid.UUID, session: DbSession, principal: WorkspaceHibernator) -> WorkspaceOut:
    """Hibernate a trialing, active, past-due or suspended workspace: its server stops, its data stays."""
    ws = service.hibernate(session, principal, workspace_id)
    defer_reconcile(ws.id, Cause.lifecycle)
    return workspace_out(ws)


@router.post(
    "/workspaces/{workspace_id}/wake",
    status_code=202,
    response_model=WorkspaceOut,
    responses=problem_responses(401, 403, 404, 409),
)
def wake_workspace(workspace_id: uuid.UUID, session: DbSession, principal: WorkspaceWaker) -> WorkspaceOut:
    """Wake a hibernated workspace into the state it was hibernated from; the reconciler starts its server."""
    ws = service.wake(session, principal, workspace_id)
    defer_reconcile(ws.id, Cause.wake)
    return workspace_out(ws)


@router.put(
    "/workspaces/{workspace_id}/maintenance-window",
    response_model=WorkspaceOut,
    responses=problem_responses(401, 403, 404, 409, 422),
)
def set_maintenance_window(
    workspace_id: uuid.UUID, body: MaintenanceWindow, session: DbSession, principal: WorkspaceScheduler
) -> WorkspaceOut:
    """Choose the weekly window in which rollouts may restart an Enterprise workspace's server (409 for a pooled
    workspace: it follows the fleet's schedule)."""
    ws = service.visible(session, principal, workspace_id, for_update=True)
    return workspace_out(maintenance.set_window(session, ws, body, principal.actor))


@router.delete(
    "/workspaces/{workspace_id}/maintenance-window", status_code=204, responses=problem_responses(401, 403, 404, 409)
)
def clear_maintenance_window(workspace_id: uuid.UUID, session: DbSession, principal: WorkspaceScheduler) -> Response:
    """Drop the window: rollouts may restart the workspace at any time."""
    ws = service.visible(session, principal, workspace_id, for_update=True)
    maintenance.set_window(session, ws, None, principal.actor)
    return Response(status_code=204)


async def _woken(waker: Waker, slug: str) -> Serving:
    """The workspace at ``slug``, woken and serving (404 when there is none to wake, 503 when it is too slow)."""
    verdict = check_format(slug)
    woken = await waker.wake(slug) if verdict.valid and verdict.slug == slug else None
    if woken is None or not woken.endpoint_url:
        raise NotFound("A workspace at this address")
    return woken


@wake_router.api_route("/wake/{slug}/{path:path}", methods=WAKE_METHODS)
async def wake_and_return(slug: str, path: str, request: Request) -> Response:
    """Wake the workspace at ``slug``, hold the request until it serves, then send the client back to the same
    address (``307``: the method and body are sent again), where the workspace now answers."""
    try:
        woken = await _woken(request.app.state.waker, slug)
    except BeingRestored as exc:
        raise being_restored() from exc
    except WakeFailed as exc:
        raise still_waking() from exc
    if not woken.waited:  # it was up already: an ingress still routing here catches up first
        await asyncio.sleep(STALE_ROUTE_PAUSE_SECONDS)
    rest = request.scope["raw_path"].decode("latin-1")[len(f"/wake/{slug}") :]
    query = request.scope.get("query_string", b"").decode("latin-1")
    location = f"{str(woken.endpoint_url).rstrip('/')}{rest}" + (f"?{query}" if query else "")
    return RedirectResponse(location, status_code=307, headers={"Cache-Control": "no-store"})


async def wake_for_websocket(websocket: WebSocket) -> None:
    """A WebSocket cannot be sent elsewhere: wake the workspace, hold the connection until it serves, then close it
    as a restarting service, so that the client connects again (to the workspace)."""
    await websocket.accept()
    with contextlib.suppress(WakeFailed, NotFound):
        await _woken(websocket.app.state.waker, websocket.path_params["slug"])
    await websocket.close(code=WEBSOCKET_SERVICE_RESTART)


# A plain route: the application's dependencies read HTTP requests only.
wake_router.add_websocket_route("/wake/{slug}/{path:path}", wake_for_websocket)
