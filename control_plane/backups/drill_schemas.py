"""Restore drill response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel

from control_plane.backups.drill_models import BackupDrill, DrillOutcome


class DrillOut(BaseModel):
    """A restore drill of a backup: ok, or corrupt with what is wrong."""

    id: uuid.UUID
    backup_id: uuid.UUID
    workspace_id: uuid.UUID
    outcome: DrillOutcome
    problems: list[str]
    posts_restored: int | None
    duration_seconds: float
    requested_by: str
    created_at: datetime


class DrillPage(BaseModel):
    """A backup's drills, newest first."""

    items: list[DrillOut]


class DrillQueued(BaseModel):
    """A drill asked for: a worker runs it; the backup's drills list it once done."""

    backup_id: uuid.UUID
    drills_url: str


def drill_out(drill: BackupDrill) -> DrillOut:
    """The API view of ``drill``."""
    return DrillOut.model_validate(drill, from_attributes=True)
