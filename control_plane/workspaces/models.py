"""Workspace table: desired spec, observed status and reconcile bookkeeping."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, Enum, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.core.db import Base
from control_plane.core.types import OptionalTimestamp, Timestamp, UUIDPk
from control_plane.workspaces.lifecycle import Lifecycle

# ``resume_state`` is set exactly while a workspace is paused (hibernated, restoring or pending deletion).
RESUME_STATE_CONDITION = (
    "(lifecycle_state IN ('hibernated', 'restoring', 'pending_deletion')) = (resume_state IS NOT NULL)"
)


class Tier(enum.StrEnum):
    """Enterprise = dedicated silo; professional = pooled."""

    professional = "professional"
    enterprise = "enterprise"


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(cls, name=name, values_callable=lambda e: [m.value for m in e])


LATE_ADMIN_OUTPUT = "late_admin"
"""Output naming an initial admin whose password came after the workspace was made (an owner made by sales sets it
from their invitation): on Kubernetes its pods restart once, so that the server creates that admin at start."""


class Workspace(Base):
    """A tenant: what it should be (spec) and what it is (status)."""

    __tablename__ = "workspaces"
    __table_args__ = (
        # Listing (repository.page_query): every equality filter reads its index in page order.
        Index("ix_workspaces_created", "created_at", "id"),
        Index("ix_workspaces_org_created", "organization_id", "created_at", "id"),
        Index("ix_workspaces_state_created", "lifecycle_state", "created_at", "id"),
        Index("ix_workspaces_tier_created", "tier", "created_at", "id"),
        Index("ix_workspaces_cell_created", "cell", "created_at", "id"),
        Index("ix_workspaces_desired_release_created", "desired_release", "created_at", "id"),
        Index("ix_workspaces_observed_release_created", "observed_release", "created_at", "id"),
        # Slug search, prefix and substring (LIKE 'ab%', LIKE '%abc%'): trigrams (the pg_trgm extension).
        Index("ix_workspaces_slug_trgm", "slug", postgresql_using="gin", postgresql_ops={"slug": "gin_trgm_ops"}),
        Index(
            "uq_workspaces_live_slug",
            "slug",
            unique=True,
            postgresql_where=text("lifecycle_state <> 'deleted'"),
        ),
        Index("ix_workspaces_next_attempt", "next_attempt_at"),
        Index("ix_workspaces_verify_phase", "verify_phase"),
        CheckConstraint(RESUME_STATE_CONDITION, name="resume_state_iff_hibernated"),
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
    """The release its server reports running (read back from what runs, never assumed)."""
    release_pin_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    """Set while an operator pins ``desired_release``: rollouts leave the workspace alone."""
    schema_revision: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """The schema revision its database is at, as its server reports it."""
    maintenance_window: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    """When rollouts may restart it (Enterprise: chosen by the customer; :mod:`control_plane.rollouts.windows`)."""
    lifecycle_state: Mapped[Lifecycle] = mapped_column(_enum(Lifecycle, "lifecycle"))
    # The state waking, the end of a restore in place or cancelling the deletion returns to; set exactly while
    # paused (hibernated, restoring or pending deletion).
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
    verify_phase: Mapped[float] = mapped_column(Float, server_default=text("random()"))
    """Where in the slow re-verification period this workspace's full plan runs again (uniform in [0, 1))."""
    trial_ends_at: Mapped[OptionalTimestamp]
    # When the deletion was requested (its final backup is taken after that) and when its grace period ends and the
    # reconciler tears the workspace down; set on entering pending_deletion, cleared when it is cancelled.
    deletion_requested_at: Mapped[OptionalTimestamp]
    purge_after: Mapped[OptionalTimestamp]
    created_at: Mapped[Timestamp]
    updated_at: Mapped[Timestamp]
    deleted_at: Mapped[OptionalTimestamp]
