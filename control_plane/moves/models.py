"""The enterprise-move table: one row per move of a Professional workspace into a new Enterprise silo."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Enum, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.core.db import Base
from control_plane.core.types import Timestamp, UUIDPk


class MoveState(enum.StrEnum):
    """scheduled -> stopping -> copying -> cut_over -> done; any open state -> failed (with the reason)."""

    scheduled = "scheduled"
    stopping = "stopping"
    copying = "copying"
    cut_over = "cut_over"
    done = "done"
    failed = "failed"


OPEN_MOVE_STATES = frozenset({MoveState.scheduled, MoveState.stopping, MoveState.copying, MoveState.cut_over})


class EnterpriseMove(Base):
    """A move: the Professional ``source`` workspace, its downtime window, the Enterprise ``target`` made at the
    window (same address), and each step taken (``steps``: ``[{"state": ..., "at": ...}]``, oldest first)."""

    __tablename__ = "enterprise_moves"
    __table_args__ = (
        Index("ix_enterprise_moves_org_created", "organization_id", "created_at"),
        Index(
            "uq_enterprise_moves_open_source",
            "source_workspace_id",
            unique=True,
            postgresql_where=text("state IN ('scheduled', 'stopping', 'copying', 'cut_over')"),
        ),
    )

    id: Mapped[UUIDPk]
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    source_workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    target_workspace_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("workspaces.id", ondelete="SET NULL"), nullable=True
    )
    backup_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("workspace_backups.id", ondelete="SET NULL"), nullable=True
    )
    slug: Mapped[str] = mapped_column(String(63))
    retired_slug: Mapped[str] = mapped_column(String(63))
    region: Mapped[str | None] = mapped_column(String(50), nullable=True)
    downtime_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    downtime_minutes: Mapped[int] = mapped_column(Integer)
    state: Mapped[MoveState] = mapped_column(
        Enum(MoveState, name="enterprise_move_state", values_callable=lambda e: [m.value for m in e])
    )
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    requested_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[Timestamp]
    updated_at: Mapped[Timestamp]
