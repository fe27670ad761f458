"""The rollout engine: one pass of :func:`advance` moves a rollout as far as its gates allow.

A pass (run by the ``advance_rollout`` task, one at a time per rollout under a PostgreSQL advisory lock that
dies with its worker's connection):

1. **Gates** of the targets in flight (I/O outside any transaction):
   ``upgrading`` -> ``soaking`` once the reconciler has converged the workspace on the release, read it back
   from what runs, and the server answers its ping at its public URL with it; the soak's baseline is the
   server's ``/metrics`` then. ``soaking`` -> ``succeeded`` at the end of the soak when the requests served
   since stayed within the error-rate and latency limits. A deployment that cannot reach its workspaces over
   HTTP (:func:`control_plane.providers.factory.reaches_workspaces_over_http`) gates on the reconciler's
   read-back alone (rollout complete, the Pods' images) and skips the ping and ``/metrics``. A gate that fails,
   or an upgrade past its deadline, sends the workspace back to its previous release (``rolling_back``, with the
   reason) unless that release cannot run on its schema (``failed``). ``rolling_back`` -> ``rolled_back`` once
   the previous release serves.
2. **Budget**: when the failures of the current wave pass its budget (none for the canaries), the rollout pauses
   itself and says why (audit, log, counter, mail to operators).
3. **Start** the current wave's pending targets, within the per-cell cap (every rollout's in-flight upgrades
   count) and the workspaces' maintenance windows: the target moves to ``upgrading`` and the workspace gets the
   release as its desired release in one transaction (compare-and-set on the target's state), so a workspace is
   upgraded once whatever workers die; its reconcile is deferred after the commit (and the resync would find the
   new generation if the worker died in between).
4. The next wave starts only when every target of the current one has finished; the last one completes the
   rollout.
"""

from __future__ import annotations

import logging
import uuid
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from control_plane.audit import service as audit
from control_plane.core import fleet_counters
from control_plane.core.clock import utcnow
from control_plane.core.db import get_engine, session_scope
from control_plane.core.settings import get_settings
from control_plane.credentials.models import Purpose
from control_plane.credentials.service import workspace_secret
from control_plane.providers.factory import reaches_workspaces_over_http
from control_plane.reconciler.queue import Cause, defer_reconcile
from control_plane.releases import repository as releases
from control_plane.releases import service as release_service
from control_plane.rollouts import gates, repository
from control_plane.rollouts.models import UPGRADABLE, Rollout, RolloutState, TargetState
from control_plane.rollouts.notices import tell_operators
from control_plane.rollouts.planning import allowed_failures
from control_plane.rollouts.repository import InFlight
from control_plane.rollouts.schemas import Plan
from control_plane.rollouts.windows import is_open
from control_plane.workspaces.models import Workspace

logger = logging.getLogger(__name__)

ENGINE = "canopy (rollout engine)"
GATE_THREADS = 16
STARTS_LOCK = zlib.crc32(b"rollout starts")
"""Transaction lock serialising upgrade starts across rollouts, so that together they keep the per-cell cap."""
PAUSES = "rollout_pauses"
OUTCOMES = "rollout_outcomes"
"""Counters (``/metrics``): pauses by cause, finished targets by state."""

MOVES: dict[TargetState, frozenset[TargetState]] = {
    TargetState.pending: frozenset({TargetState.upgrading, TargetState.skipped}),
    TargetState.upgrading: frozenset(
        {TargetState.soaking, TargetState.succeeded, TargetState.rolling_back, TargetState.failed}
    ),
    TargetState.soaking: frozenset({TargetState.succeeded, TargetState.rolling_back, TargetState.failed}),
    TargetState.succeeded: frozenset({TargetState.rolling_back}),
    TargetState.rolling_back: frozenset({TargetState.rolled_back, TargetState.failed}),
    TargetState.failed: frozenset(),
    TargetState.rolled_back: frozenset(),
    TargetState.skipped: frozenset(),
}
"""Every state change a target may make (anything else is a bug, refused by :func:`_move`)."""


@dataclass
class Outcome:
    """A gate's verdict on one target: where it moves (None: it stays) and the columns that go with it."""

    target: InFlight
    to: TargetState | None = None
    values: dict[str, Any] = field(default_factory=dict)


@contextmanager
def _advancing(rollout_id: uuid.UUID) -> Iterator[bool]:
    """Whether this process holds the rollout's advisory lock (held for the block, on its own connection)."""
    key = zlib.crc32(b"rollout:" + rollout_id.bytes)
    with get_engine().connect() as conn:
        held = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        conn.commit()
        try:
            yield held
        finally:
            if held:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()


@dataclass(frozen=True)
class Pass:
    """What one pass did: targets moved by their gates, upgrades started (both 0: nothing changed, or another
    worker holds the rollout)."""

    moved: int = 0
    started: int = 0

    def __str__(self) -> str:
        return f"{self.moved} moved, {self.started} started"


def advance(rollout_id: uuid.UUID) -> Pass:
    """One pass over a rollout (see the module's docstring)."""
    with _advancing(rollout_id) as held:
        if not held:
            return Pass()
        with session_scope() as session:
            rollout = repository.get(session, rollout_id)
            if rollout is None:
                return Pass()
            plan, release = Plan.model_validate(rollout.plan), rollout.release_version
            targets = repository.in_flight(session, rollout_id)
        outcomes = _judge_all(targets, _Gates(plan, release, reaches_workspaces_over_http(get_settings())))
        moved = _apply(outcomes, release)
        started = _progress(rollout_id, plan)
    return Pass(moved, len(started))


@dataclass(frozen=True)
class _Gates:
    """What every gate of one pass judges by: the plan, the release rolled out, and whether the workspaces'
    servers can be called over HTTP (ping, ``/metrics``) or only read back by the reconciler."""

    plan: Plan
    release: str
    http: bool


def _judge_all(targets: list[InFlight], g: _Gates) -> list[Outcome]:
    if not targets:
        return []
    now = utcnow()
    with ThreadPoolExecutor(max_workers=min(GATE_THREADS, len(targets)), thread_name_prefix="gates") as pool:
        return list(pool.map(lambda t: _judge(t, g, now), targets))


def _judge(t: InFlight, g: _Gates, now: datetime) -> Outcome:
    try:
        if t.state == TargetState.upgrading:
            return _judge_upgrade(t, g, now)
        if t.state == TargetState.soaking:
            return _judge_soak(t, g, now)
        return _judge_rollback(t, g, now)
    except Exception as exc:  # a gate's own failure must not stop the other targets
        logger.warning("rollout gate of workspace %s failed: %s", t.workspace_id, exc, exc_info=True)
        return Outcome(t)


def _read_back(t: InFlight, release: str) -> bool:
    """The reconciler converged the workspace on ``release`` and read it back from what runs."""
    return t.converged and t.desired_release == release and t.observed_release == release


def _serving(t: InFlight, release: str, http: bool) -> bool:
    """Read back on ``release`` and, over ``http``, its server answers with it at its public URL."""
    if not _read_back(t, release):
        return False
    return not http or (bool(t.endpoint_url) and gates.serving_release(str(t.endpoint_url)) == release)


def _deadline_passed(t: InFlight, plan: Plan, now: datetime) -> bool:
    return now > t.started_at + timedelta(seconds=plan.upgrade_timeout_seconds)


def _judge_upgrade(t: InFlight, g: _Gates, now: datetime) -> Outcome:
    plan = g.plan
    if not _serving(t, g.release, g.http):
        return _failed_if_late(t, plan, now, f"not serving {g.release} within {plan.upgrade_timeout_seconds:g} s")
    baseline = None
    if g.http:
        try:
            baseline = gates.sample(str(t.endpoint_url), workspace_secret(t.workspace_id, Purpose.control)).as_json()
        except gates.GateUnreachable as exc:
            return _failed_if_late(t, plan, now, str(exc))
    soak = plan.canary_soak_seconds if t.wave == 0 else plan.soak_seconds
    if soak <= 0:
        return Outcome(t, TargetState.succeeded, {"finished_at": now})
    return Outcome(t, TargetState.soaking, {"baseline": baseline, "soak_until": now + timedelta(seconds=soak)})


def _failed_if_late(t: InFlight, plan: Plan, now: datetime, why: str) -> Outcome:
    if not _deadline_passed(t, plan, now):
        return Outcome(t)
    detail = f"{why} (last reconcile error: {t.last_error})" if t.last_error else why
    return Outcome(t, TargetState.rolling_back, {"reason": detail})


def _judge_soak(t: InFlight, g: _Gates, now: datetime) -> Outcome:
    assert t.soak_until is not None
    if t.baseline is None:  # no HTTP: the soak ends on the release the reconciler read back
        return _judge_soak_read_back(t, g.release, now)
    plan = g.plan
    try:
        current = gates.sample(str(t.endpoint_url), workspace_secret(t.workspace_id, Purpose.control))
    except gates.GateUnreachable as exc:
        late = now >= t.soak_until
        return Outcome(t, TargetState.rolling_back, {"reason": str(exc)}) if late else Outcome(t)
    reason = gates.judge(gates.Sample.from_json(t.baseline), current, plan)
    if reason is not None:
        return Outcome(t, TargetState.rolling_back, {"reason": reason})
    if now >= t.soak_until:
        return Outcome(t, TargetState.succeeded, {"finished_at": now})
    return Outcome(t)


def _judge_soak_read_back(t: InFlight, release: str, now: datetime) -> Outcome:
    assert t.soak_until is not None
    if now < t.soak_until:
        return Outcome(t)
    if not _read_back(t, release):
        why = f"no longer on {release} at the end of its soak (observed {t.observed_release or 'nothing'})"
        return Outcome(t, TargetState.rolling_back, {"reason": why})
    return Outcome(t, TargetState.succeeded, {"finished_at": now})


def _judge_rollback(t: InFlight, g: _Gates, now: datetime) -> Outcome:
    plan = g.plan
    if _serving(t, t.from_release, g.http):
        return Outcome(t, TargetState.rolled_back, {"finished_at": now})
    if _deadline_passed(t, plan, now):
        reason = f"back to {t.from_release} not complete within {plan.upgrade_timeout_seconds:g} s"
        reason = f"{t.reason}; {reason}" if t.reason else reason
        return Outcome(t, TargetState.failed, {"reason": reason, "finished_at": now})
    return Outcome(t)


def _apply(outcomes: list[Outcome], release: str) -> int:
    moved, reconcile = 0, []
    with session_scope() as session:
        for judged in outcomes:
            outcome, ws = _with_rollback(session, judged) if judged.to == TargetState.rolling_back else (judged, None)
            if outcome.to is None:
                continue
            if not _move(session, outcome.target.target_id, outcome.target.state, outcome.to, **outcome.values):
                continue
            moved += 1
            _count_outcome(outcome, release)
            if ws is not None and outcome.to == TargetState.rolling_back:
                release_service.set_desired(ws, outcome.target.from_release)
                reconcile.append(ws.id)
        session.commit()
    for workspace_id in reconcile:
        defer_reconcile(workspace_id, Cause.upgrade)
    return moved


def _with_rollback(session: Session, outcome: Outcome) -> tuple[Outcome, Workspace | None]:
    """A failed upgrade goes back to its previous release (with its workspace, row-locked), or stays failed when
    that release cannot run on its schema."""
    t, now = outcome.target, utcnow()
    reason = str(outcome.values.get("reason") or "")
    ws = session.get(Workspace, t.workspace_id, with_for_update=True)
    previous = releases.by_version(session, t.from_release)
    refusal = None if ws is None or previous is None else release_service.refusal(previous, ws.schema_revision)
    if ws is None or previous is None or refusal is not None:
        why = refusal or f"release {t.from_release} is not in the catalogue"
        failed = {"reason": f"{reason}; cannot roll back: {why}", "finished_at": now}
        return Outcome(t, TargetState.failed, failed), None
    return Outcome(t, TargetState.rolling_back, {"reason": reason or None, "started_at": now, "finished_at": now}), ws


def _move(session: Session, target_id: int, current: TargetState, to: TargetState, **values: Any) -> bool:
    if to not in MOVES[current]:
        raise AssertionError(f"rollout target {target_id}: {current.value} -> {to.value} is not a declared move")
    return repository.move(session, target_id, current, state=to, **values)


def _count_outcome(outcome: Outcome, release: str) -> None:
    if outcome.to in (TargetState.succeeded, TargetState.rolled_back, TargetState.failed):
        fleet_counters.add(OUTCOMES, release, outcome.to.value)
    if outcome.to in (TargetState.rolling_back, TargetState.failed):
        logger.warning(
            "rollout of %s: workspace %s %s: %s",
            release,
            outcome.target.workspace_id,
            outcome.to.value,
            outcome.values.get("reason"),
        )


def _progress(rollout_id: uuid.UUID, plan: Plan) -> list[uuid.UUID]:
    """Budget check, new upgrades, completion (one transaction, the rollout row locked)."""
    with session_scope() as session:
        rollout = repository.get(session, rollout_id, for_update=True)
        if rollout is None or rollout.state != RolloutState.running:
            return []
        now = utcnow()
        wave = repository.current_wave(session, rollout_id)
        if wave is None:
            repository.mark_state(session, rollout, RolloutState.completed, None, now)
            _record(session, rollout, "rollout.complete")
            session.commit()
            return []
        if _over_budget(session, rollout, plan, wave, now):
            session.commit()
            return []
        started = _start(session, rollout, plan, wave, now)
        session.commit()
    for workspace_id in started:
        defer_reconcile(workspace_id, Cause.upgrade)
    return started


def _over_budget(session: Session, rollout: Rollout, plan: Plan, wave: int, now: datetime) -> bool:
    total, failures = repository.wave_counts(session, rollout.id, wave, rollout.resumed_at)
    allowed = 0 if wave == 0 else allowed_failures(plan, total)
    if failures <= allowed:
        return False
    name = "the canary wave" if wave == 0 else f"wave {wave}"
    reason = f"{name}: {failures} of {total} upgrades failed, over its budget of {allowed}; the failed ones roll back"
    repository.mark_state(session, rollout, RolloutState.paused, reason, now)
    _record(session, rollout, "rollout.pause")
    tell_operators(session, rollout, reason)
    fleet_counters.add(PAUSES, "failure_budget")
    logger.warning("rollout %s of %s paused: %s", rollout.id, rollout.release_version, reason)
    return True


def _start(session: Session, rollout: Rollout, plan: Plan, wave: int, now: datetime) -> list[uuid.UUID]:
    release = release_service.get(session, rollout.release_version)
    session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": STARTS_LOCK})  # one rollout starts at a time
    room = repository.in_flight_per_cell(session)
    started: list[uuid.UUID] = []
    for target in repository.pending_in_wave(session, rollout.id, wave):
        if plan.max_per_cell - room.get(target.cell, 0) <= 0:
            continue
        ws = session.get(Workspace, target.workspace_id, with_for_update=True)
        skip = _why_skip(ws, release)
        if skip is not None:
            _move(session, target.id, TargetState.pending, TargetState.skipped, reason=skip, finished_at=now)
            continue
        assert ws is not None
        if not is_open(ws.maintenance_window, now):
            continue
        values = {"started_at": now, "upgrades": target.upgrades + 1}
        if _move(session, target.id, TargetState.pending, TargetState.upgrading, **values):
            release_service.set_desired(ws, release.version)
            room[target.cell] = room.get(target.cell, 0) + 1
            started.append(ws.id)
    return started


def _why_skip(ws: Workspace | None, release: Any) -> str | None:
    if ws is None or ws.lifecycle_state not in UPGRADABLE:
        return f"{ws.lifecycle_state.value}, not running" if ws is not None else "deleted"
    if ws.release_pin_reason is not None:
        return f"pinned to {ws.desired_release}: {ws.release_pin_reason}"
    return release_service.refusal(release, ws.schema_revision)


def _record(session: Session, rollout: Rollout, action: str) -> None:
    audit.record(
        session, actor=ENGINE, action=action, target_type="rollout", target_id=rollout.id,
        after={"state": rollout.state.value, "reason": rollout.reason, "release": rollout.release_version},
    )  # fmt: skip
