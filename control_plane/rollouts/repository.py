"""SQL for rollouts and their targets."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from control_plane.rollouts.models import (
    ACTIVE_ROLLOUT_STATES,
    IN_FLIGHT,
    UPGRADABLE,
    Rollout,
    RolloutState,
    RolloutTarget,
    TargetState,
)
from control_plane.rollouts.schemas import Selector
from control_plane.workspaces.models import Workspace


@dataclass(frozen=True)
class InFlight:
    """An in-flight target with what its gates need of its workspace."""

    target_id: int
    state: TargetState
    wave: int
    workspace_id: uuid.UUID
    from_release: str
    started_at: datetime
    soak_until: datetime | None
    baseline: dict[str, Any] | None
    reason: str | None
    endpoint_url: str | None
    desired_release: str
    observed_release: str | None
    converged: bool
    last_error: str | None


def get(session: Session, rollout_id: uuid.UUID, *, for_update: bool = False) -> Rollout | None:
    """A rollout by id."""
    query = select(Rollout).where(Rollout.id == rollout_id)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def recent(session: Session, limit: int) -> list[Rollout]:
    """The newest rollouts first."""
    return list(session.scalars(select(Rollout).order_by(Rollout.created_at.desc(), Rollout.id).limit(limit)))


def to_drive(session: Session) -> list[uuid.UUID]:
    """Rollouts that are running or paused, or still have targets in flight (an aborted or rolled back one)."""
    busy = select(RolloutTarget.rollout_id).where(RolloutTarget.state.in_(IN_FLIGHT))
    query = select(Rollout.id).where(or_(Rollout.state.in_(ACTIVE_ROLLOUT_STATES), Rollout.id.in_(busy)))
    return list(session.scalars(query))


def selectable(session: Session, selector: Selector, release: str) -> list[uuid.UUID]:
    """Upgradable (running), unpinned workspaces that ``selector`` matches, not on ``release`` already and not in
    an active rollout."""
    busy = (
        select(RolloutTarget.workspace_id)
        .join(Rollout, Rollout.id == RolloutTarget.rollout_id)
        .where(
            or_(
                RolloutTarget.state.in_(IN_FLIGHT),
                and_(RolloutTarget.state == TargetState.pending, Rollout.state.in_(ACTIVE_ROLLOUT_STATES)),
            )
        )
    )
    query = select(Workspace.id).where(
        Workspace.lifecycle_state.in_(UPGRADABLE),
        Workspace.release_pin_reason.is_(None),
        or_(Workspace.desired_release != release, Workspace.observed_release.is_distinct_from(release)),
        Workspace.id.not_in(busy),
    )
    filters = (
        (selector.tiers, Workspace.tier),
        (selector.cells, Workspace.cell),
        (selector.organizations, Workspace.organization_id),
        (selector.workspaces, Workspace.id),
    )
    for values, column in filters:
        if values:
            query = query.where(column.in_(list(values)))
    return list(session.scalars(query.order_by(Workspace.id)))


def cells_and_releases(session: Session, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, tuple[str, str]]:
    """Each workspace's cell (``silo-<id>`` for a silo) and desired release."""
    query = select(Workspace.id, Workspace.cell, Workspace.desired_release).where(Workspace.id.in_(list(ids)))
    return {i: (cell or f"silo-{i}", release) for i, cell, release in session.execute(query)}


def in_flight(session: Session, rollout_id: uuid.UUID) -> list[InFlight]:
    """The rollout's in-flight targets with their workspaces' state."""
    query = (
        select(RolloutTarget, Workspace)
        .join(Workspace, Workspace.id == RolloutTarget.workspace_id)
        .where(RolloutTarget.rollout_id == rollout_id, RolloutTarget.state.in_(IN_FLIGHT))
        .order_by(RolloutTarget.id)
    )
    return [
        InFlight(
            target_id=t.id,
            state=t.state,
            wave=t.wave,
            workspace_id=t.workspace_id,
            from_release=t.from_release,
            started_at=t.started_at or t.finished_at or datetime.min,
            soak_until=t.soak_until,
            baseline=t.baseline,
            reason=t.reason,
            endpoint_url=ws.endpoint_url,
            desired_release=ws.desired_release,
            observed_release=ws.observed_release,
            converged=ws.observed_generation == ws.generation and ws.last_error is None,
            last_error=ws.last_error,
        )
        for t, ws in session.execute(query)
    ]


def move(session: Session, target_id: int, expected: TargetState, **values: Any) -> bool:
    """Compare-and-set a target's state (and other columns); False when another worker moved it first."""
    result = session.execute(
        update(RolloutTarget)
        .where(RolloutTarget.id == target_id, RolloutTarget.state == expected)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def current_wave(session: Session, rollout_id: uuid.UUID) -> int | None:
    """The lowest wave with a target not finished (None: every target finished)."""
    open_states = (TargetState.pending, *IN_FLIGHT)
    query = select(func.min(RolloutTarget.wave)).where(
        RolloutTarget.rollout_id == rollout_id, RolloutTarget.state.in_(open_states)
    )
    wave = session.scalar(query)
    return None if wave is None else int(wave)


def wave_counts(session: Session, rollout_id: uuid.UUID, wave: int, since: datetime | None) -> tuple[int, int]:
    """(targets, failures) of one wave; failures count only those that finished after ``since`` (a resume)."""
    failed_states = (TargetState.failed, TargetState.rolled_back, TargetState.rolling_back)
    counted = RolloutTarget.state.in_(failed_states) & RolloutTarget.reason.is_not(None)
    if since is not None:
        counted &= RolloutTarget.finished_at > since
    query = select(func.count(), func.count().filter(counted)).where(
        RolloutTarget.rollout_id == rollout_id, RolloutTarget.wave == wave
    )
    total, failures = session.execute(query).one()
    return int(total), int(failures)


def upgrading(session: Session, workspace_id: uuid.UUID) -> uuid.UUID | None:
    """The rollout with ``workspace_id`` in flight, if any."""
    query = select(RolloutTarget.rollout_id).where(
        RolloutTarget.workspace_id == workspace_id, RolloutTarget.state.in_(IN_FLIGHT)
    )
    return session.scalars(query).first()


def in_flight_per_cell(session: Session) -> dict[str, int]:
    """Upgrades in flight per cell, across every rollout."""
    query = select(RolloutTarget.cell, func.count()).where(RolloutTarget.state.in_(IN_FLIGHT))
    return {cell: int(n) for cell, n in session.execute(query.group_by(RolloutTarget.cell))}


def pending_in_wave(session: Session, rollout_id: uuid.UUID, wave: int) -> list[RolloutTarget]:
    """The wave's pending targets, row-locked (skipping rows another worker holds), in order."""
    query = (
        select(RolloutTarget)
        .where(
            RolloutTarget.rollout_id == rollout_id,
            RolloutTarget.wave == wave,
            RolloutTarget.state == TargetState.pending,
        )
        .order_by(RolloutTarget.id)
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(query))


def targets_in(session: Session, rollout_id: uuid.UUID, states: Sequence[TargetState]) -> list[RolloutTarget]:
    """The rollout's targets in ``states``, row-locked."""
    query = (
        select(RolloutTarget)
        .where(RolloutTarget.rollout_id == rollout_id, RolloutTarget.state.in_(list(states)))
        .order_by(RolloutTarget.id)
        .with_for_update()
    )
    return list(session.scalars(query))


def all_targets(session: Session, rollout_id: uuid.UUID) -> list[RolloutTarget]:
    """Every target of a rollout, by wave then order."""
    query = select(RolloutTarget).where(RolloutTarget.rollout_id == rollout_id)
    return list(session.scalars(query.order_by(RolloutTarget.wave, RolloutTarget.id)))


def active_with_release(session: Session, version: str) -> list[Rollout]:
    """Running or paused rollouts of ``version``, row-locked."""
    query = select(Rollout).where(Rollout.release_version == version, Rollout.state.in_(ACTIVE_ROLLOUT_STATES))
    return list(session.scalars(query.with_for_update()))


def mark_state(session: Session, rollout: Rollout, state: RolloutState, reason: str | None, now: datetime) -> None:
    """Set a rollout's state (and when it finished, for an ending state)."""
    rollout.state = state
    rollout.reason = reason
    rollout.updated_at = now
    if state not in ACTIVE_ROLLOUT_STATES:
        rollout.finished_at = now
