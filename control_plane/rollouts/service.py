"""Rollout actions: create (select, freeze targets in waves), pause, resume, abort, roll back; progress views.

Actions commit nothing: :mod:`control_plane.rollouts.commands` (for the API routes and the CLI verbs) commits, then
asks the engine for a pass.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict

from sqlalchemy.orm import Session

from control_plane.audit import service as audit
from control_plane.core.clock import utcnow
from control_plane.core.problems import Conflict, NotFound
from control_plane.releases import repository as releases
from control_plane.releases import service as release_service
from control_plane.releases.models import ReleaseState
from control_plane.rollouts import planning, repository
from control_plane.rollouts.models import (
    Rollout,
    RolloutState,
    RolloutTarget,
    TargetState,
)
from control_plane.rollouts.schemas import (
    Plan,
    RolloutCreate,
    RolloutOut,
    RolloutTargetOut,
    Selector,
    TargetFailure,
    WaveProgress,
)
from control_plane.workspaces.models import Workspace

STATE_MOVES: dict[RolloutState, frozenset[RolloutState]] = {
    RolloutState.running: frozenset({RolloutState.paused, RolloutState.aborted, RolloutState.rolled_back}),
    RolloutState.paused: frozenset({RolloutState.running, RolloutState.aborted, RolloutState.rolled_back}),
    RolloutState.completed: frozenset({RolloutState.rolled_back}),
    RolloutState.aborted: frozenset({RolloutState.rolled_back}),
    RolloutState.rolled_back: frozenset(),
}
"""What an operator may do to a rollout in each state (the engine also completes and pauses running ones)."""


def create(session: Session, body: RolloutCreate, actor: str) -> Rollout:
    """Freeze the selected workspaces into targets in waves (not committed); 409 when nothing is selected or the
    release may not be rolled out."""
    release = release_service.get(session, body.release)
    if release.state == ReleaseState.revoked:
        raise Conflict("release-revoked", f"Release {release.version} is revoked", version=release.version)
    rollout = Rollout(
        id=uuid.uuid4(),
        release_version=release.version,
        selector=body.selector.model_dump(mode="json"),
        plan=body.plan.model_dump(mode="json"),
        state=RolloutState.running,
        created_by=actor,
    )
    ordered = planning.shuffled(rollout.id, repository.selectable(session, body.selector, release.version))
    chosen = planning.keep_percent(ordered, body.selector.percent)
    if not chosen:
        raise Conflict("nothing-to-roll-out", "No running, unpinned workspace outside other rollouts matches")
    session.add(rollout)
    session.flush()
    where = repository.cells_and_releases(session, chosen)
    session.add_all(
        RolloutTarget(
            rollout_id=rollout.id,
            workspace_id=workspace_id,
            cell=where[workspace_id][0],
            wave=wave,
            from_release=where[workspace_id][1],
            state=TargetState.pending,
            upgrades=0,
        )
        for workspace_id, wave in planning.assign_waves(chosen, body.plan)
    )
    _audit(session, rollout, actor, "rollout.start", {"targets": len(chosen)})
    return rollout


def get(session: Session, rollout_id: uuid.UUID, *, for_update: bool = False) -> Rollout:
    """A rollout, or 404."""
    rollout = repository.get(session, rollout_id, for_update=for_update)
    if rollout is None:
        raise NotFound(f"Rollout {rollout_id}")
    return rollout


def _change(session: Session, rollout_id: uuid.UUID, to: RolloutState, reason: str, actor: str) -> Rollout:
    rollout = get(session, rollout_id, for_update=True)
    if to not in STATE_MOVES[rollout.state]:
        raise Conflict("rollout-state", f"A {rollout.state.value} rollout cannot be {to.value}", state=rollout.state)
    repository.mark_state(session, rollout, to, reason or None, utcnow())
    return rollout


def pause(session: Session, rollout_id: uuid.UUID, reason: str, actor: str) -> Rollout:
    """Stop starting upgrades (those in flight finish their gates)."""
    rollout = _change(session, rollout_id, RolloutState.paused, reason or f"paused by {actor}", actor)
    _audit(session, rollout, actor, "rollout.pause")
    return rollout


def resume(session: Session, rollout_id: uuid.UUID, reason: str, actor: str) -> Rollout:
    """Carry on; the failures so far are accepted and no longer count against the wave's budget."""
    rollout = _change(session, rollout_id, RolloutState.running, reason, actor)
    rollout.resumed_at = utcnow()
    _audit(session, rollout, actor, "rollout.resume")
    return rollout


def abort(session: Session, rollout_id: uuid.UUID, reason: str, actor: str) -> Rollout:
    """End the rollout: nothing more starts; upgraded workspaces keep the release."""
    rollout = _change(session, rollout_id, RolloutState.aborted, reason or f"aborted by {actor}", actor)
    _skip_pending(session, rollout, "rollout aborted")
    _audit(session, rollout, actor, "rollout.abort")
    return rollout


def rollback(session: Session, rollout_id: uuid.UUID, reason: str, actor: str) -> Rollout:
    """Return every workspace the rollout touched to its previous release; 409 (nothing changed) when any of them
    cannot run it on its current schema, naming them and why."""
    rollout = get(session, rollout_id, for_update=True)
    touched = repository.targets_in(
        session, rollout.id, (TargetState.upgrading, TargetState.soaking, TargetState.succeeded)
    )
    refusals = _rollback_refusals(session, touched)
    if refusals:
        raise Conflict("rollback-refused", "Some workspaces cannot run their previous release", refusals=refusals)
    rollout = _change(session, rollout_id, RolloutState.rolled_back, reason or f"rolled back by {actor}", actor)
    now = utcnow()
    for target in touched:
        ws = session.get(Workspace, target.workspace_id, with_for_update=True)
        if ws is not None:
            release_service.set_desired(ws, target.from_release)
        repository.move(session, target.id, target.state, state=TargetState.rolling_back, started_at=now)
    _skip_pending(session, rollout, "rollout rolled back")
    _audit(session, rollout, actor, "rollout.rollback", {"workspaces": len(touched)})
    return rollout


def touched_workspaces(session: Session, rollout_id: uuid.UUID) -> list[uuid.UUID]:
    """The workspaces being sent back by a rollback (to reconcile once it is committed)."""
    return [t.workspace_id for t in repository.targets_in(session, rollout_id, (TargetState.rolling_back,))]


def _rollback_refusals(session: Session, targets: list[RolloutTarget]) -> list[dict[str, str]]:
    refusals = []
    for target in targets:
        previous = releases.by_version(session, target.from_release)
        ws = session.get(Workspace, target.workspace_id)
        why = "not in the catalogue" if previous is None else None
        if previous is not None and ws is not None:
            why = release_service.refusal(previous, ws.schema_revision)
        if why:
            refusals.append({"workspace_id": str(target.workspace_id), "reason": why})
    return refusals


def _skip_pending(session: Session, rollout: Rollout, reason: str) -> None:
    now = utcnow()
    for target in repository.targets_in(session, rollout.id, (TargetState.pending,)):
        repository.move(
            session, target.id, TargetState.pending, state=TargetState.skipped, reason=reason, finished_at=now
        )


def abort_rollouts_of(session: Session, version: str, actor: str) -> int:
    """Abort the active rollouts of a release that was just revoked; returns how many."""
    release = releases.by_version(session, version)
    if release is None or release.state != ReleaseState.revoked:
        return 0
    rollouts = repository.active_with_release(session, version)
    for rollout in rollouts:
        abort(session, rollout.id, f"release {version} revoked", actor)
    return len(rollouts)


def _audit(session: Session, rollout: Rollout, actor: str, action: str, extra: dict[str, object] | None = None) -> None:
    after = {"state": rollout.state.value, "reason": rollout.reason, "release": rollout.release_version}
    audit.record(
        session, actor=actor, action=action, target_type="rollout", target_id=rollout.id,
        after=after | (extra or {}),
    )  # fmt: skip


def rollout_out(session: Session, rollout: Rollout) -> RolloutOut:
    """A rollout with its progress wave by wave."""
    targets = repository.all_targets(session, rollout.id)
    by_wave: dict[int, list[RolloutTarget]] = defaultdict(list)
    for target in targets:
        by_wave[target.wave].append(target)
    waves = [
        WaveProgress(
            wave=wave,
            size=len(members),
            states=dict(Counter(t.state for t in members)),
            failures=[
                TargetFailure(workspace_id=t.workspace_id, state=t.state, reason=t.reason)
                for t in members
                if t.reason and t.state in (TargetState.failed, TargetState.rolling_back, TargetState.rolled_back)
            ],
        )
        for wave, members in sorted(by_wave.items())
    ]
    return RolloutOut(
        id=rollout.id,
        release=rollout.release_version,
        selector=Selector.model_validate(rollout.selector),
        plan=Plan.model_validate(rollout.plan),
        state=rollout.state,
        reason=rollout.reason,
        created_by=rollout.created_by,
        created_at=rollout.created_at,
        updated_at=rollout.updated_at,
        finished_at=rollout.finished_at,
        targets=len(targets),
        waves=waves,
    )


def target_rows(session: Session, rollout_id: uuid.UUID) -> list[RolloutTargetOut]:
    """Every target of a rollout."""
    get(session, rollout_id)
    return [RolloutTargetOut.model_validate(t) for t in repository.all_targets(session, rollout_id)]
