"""Enterprise-move request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from control_plane.moves.models import EnterpriseMove, MoveState

MIN_DOWNTIME_MINUTES = 5
MAX_DOWNTIME_MINUTES = 24 * 60


class MoveRequest(BaseModel):
    """Move ``workspace_id`` (Professional) into a new Enterprise silo during the announced window."""

    model_config = ConfigDict(extra="forbid")

    workspace_id: uuid.UUID
    downtime_start: AwareDatetime
    downtime_minutes: int = Field(ge=MIN_DOWNTIME_MINUTES, le=MAX_DOWNTIME_MINUTES)
    region: str | None = Field(default=None, min_length=1, max_length=50, pattern=r"^[a-z0-9-]+$")


class MoveStep(BaseModel):
    """A state the move reached, and when."""

    state: MoveState
    at: datetime


class MoveOut(BaseModel):
    """A move: its window, the workspaces, where it is (``steps``: every state reached) and why it failed."""

    id: uuid.UUID
    organization_id: uuid.UUID
    source_workspace_id: uuid.UUID
    target_workspace_id: uuid.UUID | None
    backup_id: uuid.UUID | None
    slug: str
    retired_slug: str
    region: str | None
    downtime_start: datetime
    downtime_end: datetime
    state: MoveState
    steps: list[MoveStep]
    error: str | None
    requested_by: str
    created_at: datetime
    updated_at: datetime


def move_out(move: EnterpriseMove) -> MoveOut:
    """The API view of ``move``."""
    return MoveOut(
        id=move.id,
        organization_id=move.organization_id,
        source_workspace_id=move.source_workspace_id,
        target_workspace_id=move.target_workspace_id,
        backup_id=move.backup_id,
        slug=move.slug,
        retired_slug=move.retired_slug,
        region=move.region,
        downtime_start=move.downtime_start,
        downtime_end=move.downtime_start + timedelta(minutes=move.downtime_minutes),
        state=move.state,
        steps=[MoveStep(state=MoveState(step["state"]), at=datetime.fromisoformat(step["at"])) for step in move.steps],
        error=move.error,
        requested_by=move.requested_by,
        created_at=move.created_at,
        updated_at=move.updated_at,
    )
