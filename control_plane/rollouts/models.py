"""Rollout tables: the rollout (target, selection, plan, state) and one row per workspace it upgrades."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Enum, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.core.db import Base
from control_plane.core.types import OptionalTimestamp, Timestamp, UUIDPk
from control_plane.workspaces.lifecycle import Lifecycle


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(cls, name=name, values_callable=lambda e: [m.value for m in e])


class RolloutState(enum.StrEnum):
    """``running`` advances; ``paused`` waits for an operator (by hand or by its failure budget); the rest end it."""

    running = "running"
    paused = "paused"
    completed = "completed"
    aborted = "aborted"
    rolled_back = "rolled_back"


ACTIVE_ROLLOUT_STATES = (RolloutState.running, RolloutState.paused)


class TargetState(enum.StrEnum):
    """One workspace's way through a rollout (declared transitions: :data:`control_plane.rollouts.engine.MOVES`)."""

    pending = "pending"
    upgrading = "upgrading"
    soaking = "soaking"
    succeeded = "succeeded"
    failed = "failed"
    rolling_back = "rolling_back"
    rolled_back = "rolled_back"
    skipped = "skipped"


UPGRADABLE = frozenset({Lifecycle.trialing, Lifecycle.active, Lifecycle.past_due, Lifecycle.suspended})
"""Lifecycle states a rollout upgrades: the server runs and the workspace is past provisioning (a trial too: a
release rolled out everywhere must reach every running server, or its schema's next contraction is unsafe)."""

IN_FLIGHT = (TargetState.upgrading, TargetState.soaking, TargetState.rolling_back)
FINISHED = (TargetState.succeeded, TargetState.failed, TargetState.rolled_back, TargetState.skipped)


class Rollout(Base):
    """A target release, the workspaces it selected (frozen into targets at creation) and its plan."""

    __tablename__ = "rollouts"
    __table_args__ = (Index("ix_rollouts_state", "state"),)

    id: Mapped[UUIDPk]
    release_version: Mapped[str] = mapped_column(ForeignKey("releases.version", ondelete="RESTRICT"))
    selector: Mapped[dict[str, Any]] = mapped_column(JSONB)
    plan: Mapped[dict[str, Any]] = mapped_column(JSONB)
    state: Mapped[RolloutState] = mapped_column(_enum(RolloutState, "rollout_state"), default=RolloutState.running)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    """Why it is paused, aborted or rolled back."""
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[Timestamp]
    updated_at: Mapped[Timestamp]
    resumed_at: Mapped[OptionalTimestamp]
    """When an operator last resumed it: failures before then were accepted and no longer count."""
    finished_at: Mapped[OptionalTimestamp]


class RolloutTarget(Base):
    """One workspace of a rollout: its wave (0: the canaries), where it came from and how its upgrade went."""

    __tablename__ = "rollout_targets"
    __table_args__ = (
        UniqueConstraint("rollout_id", "workspace_id", name="uq_rollout_targets_workspace"),
        Index("ix_rollout_targets_progress", "rollout_id", "wave", "state"),
        # A workspace is upgraded by one rollout at a time.
        Index(
            "uq_rollout_targets_in_flight",
            "workspace_id",
            unique=True,
            postgresql_where=text("state IN ('upgrading', 'soaking', 'rolling_back')"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rollout_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("rollouts.id", ondelete="CASCADE"))
    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    cell: Mapped[str] = mapped_column(String(100))
    """The workspace's cell, or ``silo-<id>`` for a silo: the per-cell concurrency cap counts by it."""
    wave: Mapped[int] = mapped_column(Integer)
    from_release: Mapped[str] = mapped_column(String(50))
    state: Mapped[TargetState] = mapped_column(_enum(TargetState, "rollout_target_state"), default=TargetState.pending)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    baseline: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    """The server's request counters when its soak began (the error-rate gate reads the difference)."""
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    soak_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    upgrades: Mapped[int] = mapped_column(Integer, default=0)
    """How many times the upgrade was started: at most once per rollout, whatever workers die."""
