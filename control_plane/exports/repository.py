"""SQL for workspace exports."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from control_plane.core.clock import utcnow
from control_plane.exports.models import OPEN_STATES, ExportState, WorkspaceExport


def get(session: Session, export_id: uuid.UUID, *, for_update: bool = False) -> WorkspaceExport | None:
    """An export by id."""
    query = select(WorkspaceExport).where(WorkspaceExport.id == export_id)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def open_of(session: Session, workspace_id: uuid.UUID) -> WorkspaceExport | None:
    """The workspace's queued or running export, if any."""
    query = select(WorkspaceExport).where(
        WorkspaceExport.workspace_id == workspace_id, WorkspaceExport.state.in_(OPEN_STATES)
    )
    return session.scalars(query).one_or_none()


def newest_of(session: Session, workspace_id: uuid.UUID, limit: int) -> list[WorkspaceExport]:
    """The workspace's exports, newest first."""
    query = (
        select(WorkspaceExport)
        .where(WorkspaceExport.workspace_id == workspace_id)
        .order_by(WorkspaceExport.created_at.desc(), WorkspaceExport.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


def record_progress(session: Session, export_id: uuid.UUID, bytes_written: int, posts_exported: int) -> None:
    """How far a running export has come."""
    session.execute(
        update(WorkspaceExport)
        .where(WorkspaceExport.id == export_id)
        .values(bytes_written=bytes_written, posts_exported=posts_exported, progress_at=utcnow())
    )


def completed_of(session: Session, workspace_id: uuid.UUID) -> list[WorkspaceExport]:
    """The workspace's completed exports (their archives are kept), locked."""
    query = select(WorkspaceExport).where(
        WorkspaceExport.workspace_id == workspace_id, WorkspaceExport.state == ExportState.completed
    )
    return list(session.scalars(query.with_for_update()))


def completed_before(session: Session, before: datetime, limit: int) -> list[WorkspaceExport]:
    """Completed exports finished before ``before``, oldest first, locked (skipping those another worker holds)."""
    query = (
        select(WorkspaceExport)
        .where(WorkspaceExport.state == ExportState.completed, WorkspaceExport.completed_at < before)
        .order_by(WorkspaceExport.completed_at)
        .limit(limit)
    )
    return list(session.scalars(query.with_for_update(skip_locked=True)))
