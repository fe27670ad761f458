"""Backup and restore tables: a copy of a workspace's data (its parts, size, checksum, counts) and each use of one."""

from __future__ import annotations

import enum
import uuid
from typing import Any

from sqlalchemy import BigInteger, Enum, Float, ForeignKey, Index, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.core.db import Base
from control_plane.core.types import OptionalTimestamp, Timestamp, UUIDPk


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(cls, name=name, values_callable=lambda e: [m.value for m in e])


class BackupKind(enum.StrEnum):
    """Why it was taken: on a schedule, on demand, or before the workspace's teardown (kept 90 days)."""

    scheduled = "scheduled"
    manual = "manual"
    final = "final"


class BackupState(enum.StrEnum):
    """queued -> running -> completed | failed; completed -> expired once its parts are discarded."""

    queued = "queued"
    running = "running"
    completed = "completed"
    failed = "failed"
    expired = "expired"


OPEN_BACKUP_STATES = frozenset({BackupState.queued, BackupState.running})


class RestoreMode(enum.StrEnum):
    """Into a new workspace (a clone) or over the workspace the backup was taken of."""

    clone = "clone"
    in_place = "in_place"


class RestoreState(enum.StrEnum):
    """queued -> running -> completed | failed (a running restore whose worker died runs again from scratch)."""

    queued = "queued"
    running = "running"
    completed = "completed"
    failed = "failed"


OPEN_RESTORE_STATES = frozenset({RestoreState.queued, RestoreState.running})


class WorkspaceBackup(Base):
    """One backup of a workspace: ``parts`` is a list of :class:`~control_plane.providers.base.BackupPart` as JSON
    (database first, then files); ``sha256`` is the digest over the parts' digests, in order."""

    __tablename__ = "workspace_backups"
    __table_args__ = (
        Index("ix_workspace_backups_workspace_created", "workspace_id", "created_at"),
        Index("ix_workspace_backups_keep_until", "keep_until"),
    )

    id: Mapped[UUIDPk]
    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    kind: Mapped[BackupKind] = mapped_column(_enum(BackupKind, "backup_kind"))
    state: Mapped[BackupState] = mapped_column(_enum(BackupState, "backup_state"))
    requested_by: Mapped[str] = mapped_column(String(200))
    parts: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    posts: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    files: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[Timestamp]
    started_at: Mapped[OptionalTimestamp]
    completed_at: Mapped[OptionalTimestamp]
    duration_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    keep_until: Mapped[OptionalTimestamp]
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class WorkspaceRestore(Base):
    """One restore of a backup into ``target_workspace_id`` (a new workspace, or the source itself in place)."""

    __tablename__ = "workspace_restores"
    __table_args__ = (
        Index("ix_workspace_restores_target_created", "target_workspace_id", "created_at"),
        Index(
            "uq_workspace_restores_open_target",
            "target_workspace_id",
            unique=True,
            postgresql_where=text("state IN ('queued', 'running')"),
        ),
    )

    id: Mapped[UUIDPk]
    backup_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspace_backups.id", ondelete="CASCADE"))
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    source_workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    target_workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    mode: Mapped[RestoreMode] = mapped_column(_enum(RestoreMode, "restore_mode"))
    state: Mapped[RestoreState] = mapped_column(_enum(RestoreState, "restore_state"))
    requested_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[Timestamp]
    started_at: Mapped[OptionalTimestamp]
    completed_at: Mapped[OptionalTimestamp]
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
