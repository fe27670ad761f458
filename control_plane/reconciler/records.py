"""Reading and writing a workspace's observed status, one short transaction per write.

Nothing here holds a row lock while infrastructure is being changed: each write re-reads the row
``FOR UPDATE``, changes only reconciler-owned columns, and commits. Lifecycle transitions re-check
the state under that lock, so a concurrent API change (e.g. a deletion request) always wins and
is picked up by the reconcile it deferred.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import object_session

import control_plane.core.all_models  # noqa: F401  (every table, so foreign keys resolve)
from control_plane.core.clock import utcnow
from control_plane.core.db import session_scope
from control_plane.core.settings import Settings, get_settings
from control_plane.providers.base import Ensured, Observed, RunRelease, Watched, WorkspaceSpec
from control_plane.reconciler.status import REPORTED_BY_ALL, backoff_seconds, set_condition
from control_plane.releases import service as releases
from control_plane.subscriptions import service as subscriptions
from control_plane.workspaces import service as workspaces
from control_plane.workspaces.lifecycle import RUNNING_STATES, Lifecycle, check_transition
from control_plane.workspaces.models import Tier, Workspace

COLUMN_OUTPUTS = frozenset({"endpoint_url"})  # outputs stored in their own column
RUNTIME_OUTPUTS = ("port", "pid", "internal_url")  # meaningless once the server is stopped


@dataclass(frozen=True)
class Snapshot:
    """The row as read at the start of a reconcile."""

    spec: WorkspaceSpec
    state: Lifecycle
    generation: int
    outputs: dict[str, Any]
    admin_email: str | None
    admin_password_hash: str | None
    resume_state: Lifecycle | None = None
    deletion_requested_at: datetime | None = None
    release: RunRelease | None = None
    only_release_changed: bool = False
    """Converged at the generation before this one with nothing pending, the release still to read back: with an
    upgrade's cause, the generation that followed is the rollout's release change (see ``tasks.reconcile``)."""


def warm_up() -> None:
    """Configure the ORM and open the pool's first connection, so that a worker's first reconcile does not pay; put
    the bundled release in the catalogue if it is missing."""
    with session_scope() as session:
        session.execute(select(Workspace.id).limit(1))
        releases.ensure_bundled(session, get_settings())
        session.commit()


SPEC_COLUMNS = (
    Workspace.id,
    Workspace.slug,
    Workspace.organization_id,
    Workspace.tier,
    Workspace.region,
    Workspace.display_name,
    Workspace.cell,
)


def spec_of(ws: Any) -> WorkspaceSpec:
    """What providers need of a workspace (from its row, or a row of :data:`SPEC_COLUMNS`)."""
    return WorkspaceSpec(
        id=ws.id,
        slug=ws.slug,
        organization_id=ws.organization_id,
        tier=ws.tier.value,
        region=ws.region,
        display_name=ws.display_name,
        cell=ws.cell,
    )


def load(workspace_id: uuid.UUID) -> Snapshot | None:
    with session_scope() as session:
        ws = session.get(Workspace, workspace_id)
        if ws is None:
            return None
        return Snapshot(
            spec=spec_of(ws),
            state=ws.lifecycle_state,
            generation=ws.generation,
            outputs=dict(ws.outputs or {}),
            admin_email=ws.initial_admin_email,
            admin_password_hash=ws.initial_admin_password_hash,
            resume_state=ws.resume_state,
            deletion_requested_at=ws.deletion_requested_at,
            release=releases.runnable(session, ws.desired_release, get_settings()),
            only_release_changed=_only_release_changed(ws),
        )


def _only_release_changed(ws: Workspace) -> bool:
    return (
        ws.lifecycle_state in RUNNING_STATES - {Lifecycle.provisioning}
        and ws.observed_generation == ws.generation - 1
        and ws.reconcile_attempts == 0
        and ws.last_error is None
        and ws.desired_release != ws.observed_release
    )


@contextmanager
def locked(workspace_id: uuid.UUID) -> Iterator[Workspace]:
    """The row, locked ``FOR UPDATE`` until the block's transaction commits."""
    with session_scope() as session:
        ws = session.get(Workspace, workspace_id, with_for_update=True, populate_existing=True)
        if ws is None:
            raise LookupError(f"workspace {workspace_id} disappeared")
        yield ws


def _count_created(outputs: dict[str, Any], created: tuple[str, ...]) -> dict[str, int]:
    counts = {str(k): int(v) for k, v in dict(outputs.get("created") or {}).items()}
    for name in created:
        counts[name] = counts.get(name, 0) + 1
    return counts


def record_step(workspace_id: uuid.UUID, condition: str | None, result: Ensured) -> None:
    """Store a completed ensure: its outputs, creation counters, and its condition True."""
    with locked(workspace_id) as ws:
        outputs = dict(ws.outputs or {})
        for key, value in result.outputs.items():
            if key in COLUMN_OUTPUTS:
                setattr(ws, key, value)
            else:
                outputs[key] = value
        if result.created:
            outputs["created"] = _count_created(outputs, result.created)
        ws.outputs = outputs
        if condition:
            ws.conditions = set_condition(ws.conditions, condition, True, "Ready", "", utcnow())


def record_observed(workspace_id: uuid.UUID, observed: Observed) -> None:
    """Record the release and schema revision the runtime reports (what runs, never what was asked for)."""
    with locked(workspace_id) as ws:
        session = object_session(ws)
        assert session is not None
        release = releases.observed_release(session, observed, ws.desired_release)
        if release != ws.observed_release:
            ws.observed_release = release
        schema = releases.observed_schema(session, observed, release, ws.schema_revision)
        if schema != ws.schema_revision:
            ws.schema_revision = schema


def forget_admin_hash(workspace_id: uuid.UUID) -> None:
    """The workspace now owns the initial admin's credential; drop our copy."""
    with locked(workspace_id) as ws:
        ws.initial_admin_password_hash = None


def record_failure(workspace_id: uuid.UUID, condition: str | None, error: str, settings: Settings) -> datetime:
    """Count a failed attempt, mark the condition False, and pick the next attempt time."""
    now = utcnow()
    with locked(workspace_id) as ws:
        delay = backoff_seconds(ws.reconcile_attempts, settings.backoff_base_seconds, settings.backoff_max_seconds)
        ws.reconcile_attempts += 1
        ws.last_error = error
        ws.next_attempt_at = now + timedelta(seconds=delay)
        conditions = ws.conditions
        for type_ in {condition, "Available"} - {None}:
            conditions = set_condition(conditions, str(type_), False, "Failed", error, now)
        ws.conditions = conditions
        return ws.next_attempt_at


def _clear_attempts(ws: Workspace, now: datetime, generation: int) -> None:
    ws.reconcile_attempts = 0
    ws.last_error = None
    ws.next_attempt_at = None
    ws.last_reconciled_at = now
    ws.observed_generation = max(ws.observed_generation or 0, generation)


def workspace_plan(workspace_id: uuid.UUID) -> dict[str, object]:
    """The billing plan the workspace's server is told; a Professional organization's trial starts when its
    first workspace is ready to use."""
    settings = get_settings()
    with session_scope() as session:
        ws = session.get(Workspace, workspace_id)
        if ws is None:
            raise LookupError(f"workspace {workspace_id} disappeared")
        if ws.tier is Tier.professional and ws.lifecycle_state in (Lifecycle.provisioning, Lifecycle.trialing):
            subscriptions.start_trial(session, settings, ws.organization_id, utcnow())
        return subscriptions.workspace_plan(session, settings, ws)


def record_converged(workspace_id: uuid.UUID, generation: int, settings: Settings) -> Lifecycle:
    """Everything is ready: clear the error bookkeeping and finish provisioning (into the state billing says)."""
    now = utcnow()
    with locked(workspace_id) as ws:
        _clear_attempts(ws, now, generation)
        if ws.lifecycle_state == Lifecycle.provisioning:
            session = object_session(ws)
            assert session is not None
            target = subscriptions.ready_state(session, ws)
            check_transition(ws.lifecycle_state, target)
            ws.lifecycle_state = target
            if target == Lifecycle.trialing:
                ws.trial_ends_at = subscriptions.trial_ends_at(session, ws.organization_id) or now + timedelta(
                    days=settings.trial_days
                )
        return ws.lifecycle_state


def _mark_down(ws: Workspace, reason: str, types: tuple[str, ...], now: datetime) -> None:
    conditions = ws.conditions
    for type_ in types:
        conditions = set_condition(conditions, type_, False, reason, "", now)
    ws.conditions = conditions
    ws.outputs = {k: v for k, v in (ws.outputs or {}).items() if k not in RUNTIME_OUTPUTS}


def record_hibernated(workspace_id: uuid.UUID, generation: int) -> None:
    now = utcnow()
    with locked(workspace_id) as ws:
        _clear_attempts(ws, now, generation)
        _mark_down(ws, "Hibernated", ("ComputeReady", "Available"), now)


def record_restored(workspace_id: uuid.UUID, generation: int) -> None:
    """A restore in place is over: the workspace resumes the state it left (audited, actor ``worker``), its server
    down until the next reconcile starts it."""
    now = utcnow()
    with locked(workspace_id) as ws:
        _clear_attempts(ws, now, generation)
        _mark_down(ws, "Restored", ("ComputeReady", "Available"), now)
        if ws.lifecycle_state == Lifecycle.restoring and ws.resume_state is not None:
            session = object_session(ws)
            assert session is not None
            workspaces.transition(session, ws, ws.resume_state, "worker", action="workspace.restored")


def record_torn_down(workspace_id: uuid.UUID, condition: str | None) -> None:
    if condition is None:
        return
    with locked(workspace_id) as ws:
        _mark_down(ws, "Deleted", (condition, "Available"), utcnow())


def purge_due(workspace_id: uuid.UUID, generation: int) -> bool:
    """Whether the purge of a stopped workspace pending deletion may begin: it is still the deletion this reconcile
    read (not cancelled meanwhile) and its purge date has passed. Until then the reconcile is done and the next
    attempt is the purge date (the resync leaves it alone till then)."""
    now = utcnow()
    with locked(workspace_id) as ws:
        if ws.lifecycle_state != Lifecycle.pending_deletion or ws.generation != generation:
            return False
        assert ws.purge_after is not None
        if ws.purge_after <= now:
            return True
        _clear_attempts(ws, now, generation)
        ws.next_attempt_at = ws.purge_after
        _mark_down(ws, "PendingDeletion", ("ComputeReady", "Available"), now)
        return False


def record_deleted(workspace_id: uuid.UUID, generation: int) -> bool:
    """Teardown is complete: the workspace is ``deleted`` unless someone revived it meanwhile."""
    now = utcnow()
    with locked(workspace_id) as ws:
        _clear_attempts(ws, now, generation)
        if ws.lifecycle_state != Lifecycle.pending_deletion:
            return False
        check_transition(ws.lifecycle_state, Lifecycle.deleted)
        ws.lifecycle_state = Lifecycle.deleted
        ws.resume_state = None
        ws.deleted_at = now
        ws.endpoint_url = None
        reported = tuple(dict.fromkeys([*REPORTED_BY_ALL, *(c["type"] for c in ws.conditions or [])]))
        _mark_down(ws, "Deleted", reported, now)
        ws.outputs = {"created": dict((ws.outputs or {}).get("created") or {})}
        return True


CONVERGED = and_(
    Workspace.lifecycle_state.in_(RUNNING_STATES - {Lifecycle.provisioning}),
    Workspace.observed_generation >= Workspace.generation,
    Workspace.reconcile_attempts == 0,
    Workspace.next_attempt_at.is_(None),
    Workspace.last_reconciled_at.is_not(None),
)
"""A live workspace whose last reconcile ensured its whole plan at its current generation: only drift (or its slow
re-verification) makes it run again."""


def workspaces_to_resync(now: datetime) -> list[uuid.UUID]:
    """Workspaces whose desired state is not reached yet: live ones not converged, restores, due retries, and
    deletions that are new (not yet stopped) or due (a stopped deletion's next attempt is its purge date)."""
    wanted = RUNNING_STATES | {Lifecycle.pending_deletion, Lifecycle.restoring}
    not_backing_off = or_(Workspace.next_attempt_at.is_(None), Workspace.next_attempt_at <= now)
    due_retry = and_(Workspace.next_attempt_at <= now, Workspace.lifecycle_state != Lifecycle.deleted)
    unconverged = and_(Workspace.lifecycle_state.in_(wanted), not_backing_off, ~CONVERGED)
    query = select(Workspace.id).where(or_(unconverged, due_retry))
    with session_scope() as session:
        return list(session.scalars(query))


def workspaces_to_verify(window: tuple[float, float]) -> list[uuid.UUID]:
    """Converged workspaces whose re-verification phase lies in ``window`` ([start, end) of the period as fractions
    in [0, 1]; start > end wraps around the period's end)."""
    start, end = window
    phase = Workspace.verify_phase
    inside = and_(phase >= start, phase < end) if start <= end else or_(phase >= start, phase < end)
    with session_scope() as session:
        return list(session.scalars(select(Workspace.id).where(CONVERGED, inside)))


def converged_ids(cell: str | None = None) -> list[uuid.UUID]:
    """Every converged workspace (in ``cell`` when given)."""
    query = select(Workspace.id).where(CONVERGED)
    query = query.where(Workspace.cell == cell) if cell else query
    with session_scope() as session:
        return list(session.scalars(query))


def converged_workspaces() -> list[Watched]:
    """Every converged workspace's spec and when its plan last ran, for the drift probes."""
    with session_scope() as session:
        rows = session.execute(select(*SPEC_COLUMNS, Workspace.last_reconciled_at).where(CONVERGED))
        return [Watched(spec_of(row), row.last_reconciled_at) for row in rows]
