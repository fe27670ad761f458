"""Workspace routes under /api/v1 (thin: parse, authorize, call the service)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from control_plane.accounts.models import Account
from control_plane.core.deps import DbSession, IdempotencyKey
from control_plane.core.idempotency import run_once
from control_plane.core.problems import InvalidInput, NotFound, problem_responses
from control_plane.reconciler.queue import defer_reconcile
from control_plane.workspaces import service
from control_plane.workspaces.auth import (
    WorkspaceCreator,
    WorkspaceDeleter,
    WorkspaceHibernator,
    WorkspaceReader,
    WorkspaceWaker,
)
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Tier
from control_plane.workspaces.schemas import (
    SlugAvailability,
    WorkspaceCreate,
    WorkspaceOut,
    WorkspacePage,
    workspace_out,
)

router = APIRouter(prefix="/api/v1", tags=["workspaces"])


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
    """Create a workspace and start provisioning it."""
    organization_id = body.organization_id if principal.is_staff else principal.organization_id
    if organization_id is None:
        raise InvalidInput("organization_id", "is required for staff tokens")
    if not principal.can_see(organization_id):
        raise NotFound("Organization")
    account = session.get(Account, principal.account_id)
    assert account is not None

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
            initial_admin=(account.email, account.password_hash),
        )
        return 201, workspace_out(ws).model_dump(mode="json")

    outcome = run_once(session, f"workspaces:{principal.account_id}", key, body.model_dump(mode="json"), create)
    if not outcome.replayed:
        defer_reconcile(uuid.UUID(outcome.body["id"]))
    return JSONResponse(outcome.body, status_code=outcome.status_code)


@router.get("/workspaces", response_model=WorkspacePage, responses=problem_responses(401, 403))
def list_workspaces(
    session: DbSession,
    principal: WorkspaceReader,
    organization_id: uuid.UUID | None = None,
    state: Lifecycle | None = None,
    tier: Tier | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 50,
) -> WorkspacePage:
    """Workspaces the caller may see, oldest first, keyset-paginated by ``cursor``."""
    rows, next_cursor = service.list_page(
        session,
        principal,
        organization_id=organization_id,
        state=state,
        tier=tier,
        cursor=cursor,
        limit=limit,
    )
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
def delete_workspace(
    workspace_id: uuid.UUID, session: DbSession, principal: WorkspaceDeleter, response: Response
) -> WorkspaceOut:
    """Request deletion; the reconciler tears the workspace down and marks it deleted."""
    ws = service.request_deletion(session, principal, workspace_id)
    defer_reconcile(ws.id)
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
    defer_reconcile(ws.id)
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
    defer_reconcile(ws.id)
    return workspace_out(ws)
