"""Rollout request and response bodies: the selector, the plan, progress."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from control_plane.releases.schemas import Version
from control_plane.rollouts.models import RolloutState, TargetState
from control_plane.workspaces.models import Tier

MAX_EXPLICIT = 10_000


class Selector(BaseModel):
    """Which live workspaces a rollout takes: every filter given must match; ``percent`` then keeps a stable
    pseudo-random share of them (the same workspaces for the same rollout)."""

    model_config = ConfigDict(extra="forbid")

    tiers: list[Tier] = Field(default_factory=list, max_length=2)
    cells: list[str] = Field(default_factory=list, max_length=1000)
    organizations: list[uuid.UUID] = Field(default_factory=list, max_length=MAX_EXPLICIT)
    workspaces: list[uuid.UUID] = Field(default_factory=list, max_length=MAX_EXPLICIT)
    percent: int = Field(default=100, ge=1, le=100)


class Plan(BaseModel):
    """How a rollout proceeds (defaults: an SRE's conservative plan)."""

    model_config = ConfigDict(extra="forbid")

    canaries: int = Field(default=1, ge=0, le=1000, description="Workspaces upgraded first, alone, as wave 0.")
    canary_soak_seconds: float = Field(default=900, ge=0, le=7 * 86400)
    first_wave: int = Field(default=10, ge=1, le=100_000)
    growth: float = Field(default=2.0, ge=1.0, le=10.0, description="Each wave is this many times the last.")
    max_wave: int = Field(default=500, ge=1, le=100_000)
    soak_seconds: float = Field(default=300, ge=0, le=7 * 86400, description="Each upgraded workspace's soak.")
    max_per_cell: int = Field(default=20, ge=1, le=10_000, description="Concurrent upgrades per cell (or silo).")
    failure_budget: float = Field(
        default=0.05, ge=0, le=1, description="Share of a wave that may fail before the rollout pauses itself."
    )
    upgrade_timeout_seconds: float = Field(default=900, ge=1, le=86400)
    max_error_rate: float = Field(default=0.02, ge=0, le=1, description="5xx share of requests during the soak.")
    max_p99_seconds: float = Field(default=2.0, gt=0, le=600, description="p99 request latency during the soak.")


class RolloutCreate(BaseModel):
    """Start a rollout of ``release`` over the workspaces ``selector`` picks, following ``plan``."""

    model_config = ConfigDict(extra="forbid")

    release: Version
    selector: Selector = Field(default_factory=Selector)
    plan: Plan = Field(default_factory=Plan)


class RolloutAction(BaseModel):
    """A stated reason for pausing, aborting or rolling back."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=500)


class TargetFailure(BaseModel):
    """A workspace whose upgrade failed, and why."""

    workspace_id: uuid.UUID
    state: TargetState
    reason: str | None


class WaveProgress(BaseModel):
    """One wave: its size and its targets per state, and the failures with their reasons."""

    wave: int
    size: int
    states: dict[TargetState, int]
    failures: list[TargetFailure]


class RolloutOut(BaseModel):
    """A rollout with its progress wave by wave."""

    id: uuid.UUID
    release: str
    selector: Selector
    plan: Plan
    state: RolloutState
    reason: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    targets: int
    waves: list[WaveProgress]


class RolloutTargetOut(BaseModel):
    """One workspace of a rollout."""

    model_config = ConfigDict(from_attributes=True)

    workspace_id: uuid.UUID
    cell: str
    wave: int
    from_release: str
    state: TargetState
    reason: str | None
    started_at: datetime | None
    finished_at: datetime | None
    upgrades: int
