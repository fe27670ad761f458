"""Workspace export table: one archive of a workspace, its progress and where it is kept."""

from __future__ import annotations

import enum
import uuid
from typing import Any

from sqlalchemy import BigInteger, Enum, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.core.db import Base
from control_plane.core.types import OptionalTimestamp, Timestamp, UUIDPk


class ExportState(enum.StrEnum):
    """queued -> running -> completed | failed (a running export whose worker died runs again from the start);
    completed -> expired once its archive is removed (past ``export_keep_days``, or with its purged workspace)."""

    queued = "queued"
    running = "running"
    completed = "completed"
    failed = "failed"
    expired = "expired"


OPEN_STATES = frozenset({ExportState.queued, ExportState.running})


class WorkspaceExport(Base):
    """An export of one workspace: at most one queued or running per workspace."""

    __tablename__ = "workspace_exports"
    __table_args__ = (
        Index("ix_workspace_exports_workspace_created", "workspace_id", "created_at"),
        Index(
            "uq_workspace_exports_open",
            "workspace_id",
            unique=True,
            postgresql_where=text("state IN ('queued', 'running')"),
        ),
    )

    id: Mapped[UUIDPk]
    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    state: Mapped[ExportState] = mapped_column(
        Enum(ExportState, name="export_state", values_callable=lambda e: [m.value for m in e])
    )
    requested_by: Mapped[str] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    bytes_written: Mapped[int] = mapped_column(BigInteger, default=0)
    posts_exported: Mapped[int] = mapped_column(BigInteger, default=0)
    # Where the archive is kept: {"path": ...} (local runtime) or {"bucket", "key", "region"} (S3, SSE-KMS).
    location: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[Timestamp]
    started_at: Mapped[OptionalTimestamp]
    progress_at: Mapped[OptionalTimestamp]
    completed_at: Mapped[OptionalTimestamp]
