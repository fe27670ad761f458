"""Restore drill table: one re-read and scratch restore of a backup, and what it found."""

from __future__ import annotations

import enum
import uuid

from sqlalchemy import BigInteger, Enum, Float, ForeignKey, Index, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.core.db import Base
from control_plane.core.types import Timestamp, UUIDPk


class DrillOutcome(enum.StrEnum):
    """ok: every part re-read intact and the database restored with the recorded posts; corrupt: anything else."""

    ok = "ok"
    corrupt = "corrupt"


class BackupDrill(Base):
    """A restore drill of one backup (the periodic sample's, or one asked for)."""

    __tablename__ = "backup_drills"
    __table_args__ = (Index("ix_backup_drills_backup_created", "backup_id", "created_at"),)

    id: Mapped[UUIDPk]
    backup_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspace_backups.id", ondelete="CASCADE"))
    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    outcome: Mapped[DrillOutcome] = mapped_column(
        Enum(DrillOutcome, name="drill_outcome", values_callable=lambda e: [m.value for m in e])
    )
    problems: Mapped[list[str]] = mapped_column(JSONB, default=list)
    posts_restored: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    duration_seconds: Mapped[float] = mapped_column(Float)
    requested_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[Timestamp]
