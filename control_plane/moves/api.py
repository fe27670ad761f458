"""Enterprise-move routes under /api/v1 (thin: parse, authorize, call the service)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body

from control_plane.core.deps import DbSession
from control_plane.core.problems import problem_responses
from control_plane.moves import service
from control_plane.moves.auth import MoveManager, MoveReader
from control_plane.moves.schemas import MoveOut, MoveRequest, move_out
from control_plane.moves.tasks import defer_move

router = APIRouter(prefix="/api/v1", tags=["enterprise moves"])


@router.post(
    "/organizations/{organization_id}/enterprise-move",
    status_code=202,
    response_model=MoveOut,
    responses=problem_responses(401, 403, 404, 409, 422),
)
def request_move(
    organization_id: uuid.UUID, body: Annotated[MoveRequest, Body()], session: DbSession, principal: MoveManager
) -> MoveOut:
    """Move the organization's Professional workspace into a new Enterprise silo (sales, admin; the organization
    needs a contract): its owners are mailed the downtime window now; at the window the workspace stops, its
    database and files are copied into the silo, which takes over its address, and the old one is retired (pending
    deletion, recoverable during its grace) and its Professional plan ended."""
    move = service.request(session, principal, organization_id, body)
    defer_move(move.id, move.source_workspace_id, move.downtime_start)
    return move_out(move)


@router.get(
    "/organizations/{organization_id}/enterprise-move",
    response_model=MoveOut,
    responses=problem_responses(401, 403, 404),
)
def get_move(organization_id: uuid.UUID, session: DbSession, principal: MoveReader) -> MoveOut:
    """The organization's newest move: its window, its state (scheduled, stopping, copying, cut_over, done, failed
    with the reason) and every step taken."""
    return move_out(service.newest(session, principal, organization_id))
