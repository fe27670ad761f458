"""Release routes under /api/v1: the catalogue, the fleet by release, and pinning a workspace."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from control_plane.core.deps import DbSession, IdempotencyKey
from control_plane.core.idempotency import run_once
from control_plane.core.problems import problem_responses
from control_plane.releases import commands, service
from control_plane.releases.auth import ReleaseManager, ReleaseReader
from control_plane.releases.schemas import FleetCount, ReleaseChange, ReleaseOut, ReleasePin, ReleasePublish
from control_plane.workspaces.schemas import WorkspaceOut, workspace_out

router = APIRouter(prefix="/api/v1", tags=["releases"], responses=problem_responses(401, 403))


@router.post("/releases", status_code=201, response_model=ReleaseOut, responses=problem_responses(409))
def publish_release(
    body: ReleasePublish, session: DbSession, principal: ReleaseManager, key: IdempotencyKey
) -> JSONResponse:
    """Publish a candidate release (immutable: a version is published once)."""
    payload = body.model_dump(mode="json")

    def create() -> tuple[int, object]:
        release = service.publish(session, body, principal.actor)
        return 201, service.release_out(release, {}, {}).model_dump(mode="json")

    outcome = run_once(session, f"releases:{principal.account_id}", key, payload, create)
    return JSONResponse(outcome.body, status_code=outcome.status_code)


@router.get("/releases", response_model=list[ReleaseOut])
def list_releases(session: DbSession, principal: ReleaseReader) -> list[ReleaseOut]:
    """Every release, newest first, with how many workspaces want it and run it."""
    return service.listing(session)


@router.get("/releases/fleet", response_model=list[FleetCount])
def fleet_by_release(session: DbSession, principal: ReleaseReader) -> list[FleetCount]:
    """The live fleet counted by desired and observed release, tier, cell and lifecycle state."""
    return service.fleet(session)


@router.get("/releases/{version}", response_model=ReleaseOut, responses=problem_responses(404))
def get_release(version: str, session: DbSession, principal: ReleaseReader) -> ReleaseOut:
    """One release with its fleet counts."""
    return service.one(session, version)


@router.patch("/releases/{version}", response_model=ReleaseOut, responses=problem_responses(404, 409))
def change_release(version: str, body: ReleaseChange, session: DbSession, principal: ReleaseManager) -> ReleaseOut:
    """Promote a candidate to stable or revoke a release (revoking aborts the rollouts that carry it)."""
    commands.change(session, version, body.state, body.notes, principal.actor)
    return service.one(session, version)


@router.put(
    "/workspaces/{workspace_id}/release-pin", response_model=WorkspaceOut, responses=problem_responses(404, 409)
)
def pin_release(
    workspace_id: uuid.UUID, body: ReleasePin, session: DbSession, principal: ReleaseManager
) -> WorkspaceOut:
    """Pin a workspace to a release for a stated reason; rollouts leave it alone until it is unpinned."""
    return workspace_out(commands.pin(session, workspace_id, body.version, body.reason, principal.actor))


@router.delete("/workspaces/{workspace_id}/release-pin", status_code=204, responses=problem_responses(404))
def unpin_release(workspace_id: uuid.UUID, session: DbSession, principal: ReleaseManager) -> Response:
    """Let rollouts take the workspace again."""
    commands.unpin(session, workspace_id, principal.actor)
    return Response(status_code=204)
