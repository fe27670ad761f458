"""SQL for workspace backups and restores."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from control_plane.backups.models import (
    OPEN_BACKUP_STATES,
    OPEN_RESTORE_STATES,
    BackupKind,
    BackupState,
    WorkspaceBackup,
    WorkspaceRestore,
)


def get(session: Session, backup_id: uuid.UUID, *, for_update: bool = False) -> WorkspaceBackup | None:
    """A backup by id."""
    query = select(WorkspaceBackup).where(WorkspaceBackup.id == backup_id)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def open_of(session: Session, workspace_id: uuid.UUID) -> WorkspaceBackup | None:
    """The workspace's oldest queued or running backup, if any."""
    query = (
        select(WorkspaceBackup)
        .where(WorkspaceBackup.workspace_id == workspace_id, WorkspaceBackup.state.in_(OPEN_BACKUP_STATES))
        .order_by(WorkspaceBackup.created_at)
        .limit(1)
    )
    return session.scalars(query).first()


def final_of(
    session: Session, workspace_id: uuid.UUID, states: frozenset[BackupState], started_since: datetime | None = None
) -> WorkspaceBackup | None:
    """The workspace's newest final backup in one of ``states`` (started at ``started_since`` or later, if given)."""
    query = (
        select(WorkspaceBackup)
        .where(
            WorkspaceBackup.workspace_id == workspace_id,
            WorkspaceBackup.kind == BackupKind.final,
            WorkspaceBackup.state.in_(states),
        )
        .order_by(WorkspaceBackup.created_at.desc())
        .limit(1)
    )
    if started_since is not None:
        query = query.where(WorkspaceBackup.started_at >= started_since)
    return session.scalars(query).first()


def newest_of(session: Session, workspace_id: uuid.UUID, limit: int) -> list[WorkspaceBackup]:
    """The workspace's backups, newest first."""
    query = (
        select(WorkspaceBackup)
        .where(WorkspaceBackup.workspace_id == workspace_id)
        .order_by(WorkspaceBackup.created_at.desc(), WorkspaceBackup.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


def get_restore(session: Session, restore_id: uuid.UUID, *, for_update: bool = False) -> WorkspaceRestore | None:
    """A restore by id."""
    query = select(WorkspaceRestore).where(WorkspaceRestore.id == restore_id)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def open_restore_into(session: Session, workspace_id: uuid.UUID) -> WorkspaceRestore | None:
    """The queued or running restore into the workspace (at most one: a unique index says so)."""
    query = select(WorkspaceRestore).where(
        WorkspaceRestore.target_workspace_id == workspace_id, WorkspaceRestore.state.in_(OPEN_RESTORE_STATES)
    )
    return session.scalars(query).one_or_none()


def newest_restore_into(session: Session, workspace_id: uuid.UUID) -> WorkspaceRestore | None:
    """The newest restore into the workspace (one indexed read: what the reconciler's restore step asks)."""
    query = (
        select(WorkspaceRestore)
        .where(WorkspaceRestore.target_workspace_id == workspace_id)
        .order_by(WorkspaceRestore.created_at.desc())
        .limit(1)
    )
    return session.scalars(query).first()


def newest_restore_of(session: Session, backup_id: uuid.UUID) -> WorkspaceRestore | None:
    """The newest restore of the backup."""
    query = (
        select(WorkspaceRestore)
        .where(WorkspaceRestore.backup_id == backup_id)
        .order_by(WorkspaceRestore.created_at.desc())
        .limit(1)
    )
    return session.scalars(query).first()


def newest_failed(session: Session, limit: int) -> list[WorkspaceBackup]:
    """The newest failed backups of every workspace."""
    query = (
        select(WorkspaceBackup)
        .where(WorkspaceBackup.state == BackupState.failed)
        .order_by(WorkspaceBackup.created_at.desc(), WorkspaceBackup.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))
