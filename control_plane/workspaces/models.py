"""Workspace table: desired spec, observed status and reconcile bookkeeping."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, Enum, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.core.db import Base
from control_plane.core.types import OptionalTimestamp, Timestamp, UUIDPk
from control_plane.workspaces.lifecycle import Lifecycle


class Tier(enum.StrEnum):
    """Enterprise = dedicated silo; professional = pooled."""

    professional = "professional"
    enterprise = "enterprise"


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(cls, name=name, values_callable=lambda e: [m.value for m in e])


class Workspace(Base):
    """A tenant: what it should be (spec) and what it is (status)."""

    __tablename__ = "workspaces"
    __table_args__ = (
        Index("ix_workspaces_org_created", "organization_id", "created_at", "id"),
        Index(
            "uq_workspaces_live_slug",
            "slug",
            unique=True,
            postgresql_where=text("lifecycle_state <> 'deleted'"),
        ),
        Index("ix_workspaces_next_attempt", "next_attempt_at"),
        CheckConstraint(
            "(lifecycle_state IN ('hibernated', 'restoring')) = (resume_state IS NOT NULL)",
            name="resume_state_iff_hibernated",
        ),
    )

    id: Mapped[UUIDPk]
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="RESTRICT"))
    slug: Mapped[str] = mapped_column(String(63))
    display_name: Mapped[str] = mapped_column(String(200))
    tier: Mapped[Tier] = mapped_column(_enum(Tier, "tier"))
    region: Mapped[str] = mapped_column(String(50))
    cell: Mapped[str | None] = mapped_column(String(100), nullable=True)
    desired_release: Mapped[str] = mapped_column(String(50))
    observed_release: Mapped[str | None] = mapped_column(String(50), nullable=True)
    lifecycle_state: Mapped[Lifecycle] = mapped_column(_enum(Lifecycle, "lifecycle"), index=True)
    # The state waking (or the end of a restore in place) returns to; set exactly while hibernated or restoring.
    resume_state: Mapped[Lifecycle | None] = mapped_column(_enum(Lifecycle, "lifecycle"), nullable=True)
    conditions: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    outputs: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    endpoint_url: Mapped[str | None] = mapped_column(String(300), nullable=True)
    initial_admin_email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    initial_admin_password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    generation: Mapped[int] = mapped_column(Integer, default=1)
    observed_generation: Mapped[int] = mapped_column(Integer, default=0)
    reconcile_attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_reconciled_at: Mapped[OptionalTimestamp]
    trial_ends_at: Mapped[OptionalTimestamp]
    created_at: Mapped[Timestamp]
    updated_at: Mapped[Timestamp]
    deleted_at: Mapped[OptionalTimestamp]
