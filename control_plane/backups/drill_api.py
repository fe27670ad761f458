"""Restore drill routes under /api/v1, for operators (thin: parse, authorize, call the service)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter

from control_plane.backups import drills
from control_plane.backups.drill_schemas import DrillPage, DrillQueued, drill_out
from control_plane.backups.periodic import defer_drill
from control_plane.core.authz import Permission, Principal
from control_plane.core.deps import DbSession, authorized
from control_plane.core.problems import problem_responses

router = APIRouter(prefix="/api/v1", tags=["backups"])

Driller = Annotated[Principal, authorized(Permission.drill_backups)]


@router.post(
    "/backups/{backup_id}/drills",
    status_code=202,
    response_model=DrillQueued,
    responses=problem_responses(401, 403, 404, 409),
)
def request_drill(backup_id: uuid.UUID, session: DbSession, principal: Driller) -> DrillQueued:
    """Restore-drill a completed backup now: a worker re-reads its parts, restores its database into a scratch
    database and checks it; the backup's drills list the outcome."""
    drills.drillable(session, backup_id)
    defer_drill(backup_id, principal.actor)
    return DrillQueued(backup_id=backup_id, drills_url=f"/api/v1/backups/{backup_id}/drills")


@router.get("/backups/{backup_id}/drills", response_model=DrillPage, responses=problem_responses(401, 403, 404))
def list_drills(backup_id: uuid.UUID, session: DbSession, principal: Driller) -> DrillPage:
    """The backup's newest restore drills."""
    drills.drillable(session, backup_id, completed=False)
    return DrillPage(items=[drill_out(d) for d in drills.of_backup(session, backup_id)])
