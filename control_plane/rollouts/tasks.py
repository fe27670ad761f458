"""procrastinate tasks that drive rollouts: a periodic sweep defers one ``advance_rollout`` per rollout that has
work, and each runs one pass of :func:`control_plane.rollouts.engine.advance` (at most one waits per rollout:
its queueing lock; at most one runs: the engine's advisory lock). A pass that changed something asks for the next
one a moment later (:data:`FOLLOW_UP_SECONDS`), so a moving rollout does not wait for the sweep."""

from __future__ import annotations

import contextlib
import uuid

from procrastinate.exceptions import AlreadyEnqueued

from control_plane.core.db import session_scope
from control_plane.core.settings import get_settings
from control_plane.core.task_queue import app, ensure_sync_open, every
from control_plane.rollouts import engine, repository

ADVANCE_TASK = "advance_rollout"
DRIVE_TASK = "drive_rollouts"

_settings_at_import = get_settings()


FOLLOW_UP_SECONDS = 0.5


@app.task(name=ADVANCE_TASK)
def advance_rollout(rollout_id: str) -> str:
    """One pass over a rollout; the next follows soon when this one changed something."""
    done = engine.advance(uuid.UUID(rollout_id))
    if done.moved or done.started:
        defer_advance(uuid.UUID(rollout_id), after=FOLLOW_UP_SECONDS)
    return str(done)


def defer_advance(rollout_id: uuid.UUID, after: float = 0.0) -> None:
    """Ask the workers for a pass over a rollout, now or ``after`` seconds (a waiting one will do)."""
    ensure_sync_open()
    deferrer = app.configure_task(
        name=ADVANCE_TASK,
        queueing_lock=f"rollout:{rollout_id}",
        priority=10,
        schedule_in={"seconds": after} if after else None,
    )
    with contextlib.suppress(AlreadyEnqueued):
        deferrer.defer(rollout_id=str(rollout_id))


def nudge_rollout_of(workspace_id: uuid.UUID) -> None:
    """Ask for a pass over the rollout upgrading ``workspace_id`` now (its reconcile just ended), if there is one."""
    with session_scope() as session:
        rollout_id = repository.upgrading(session, workspace_id)
    if rollout_id is not None:
        defer_advance(rollout_id)


@app.periodic(cron=every(_settings_at_import.rollout_seconds), periodic_id="rollouts")
@app.task(name=DRIVE_TASK, lock=DRIVE_TASK, queueing_lock=DRIVE_TASK)
def drive_rollouts(timestamp: int) -> int:
    """Defer a pass over every rollout with work; returns how many."""
    with session_scope() as session:
        rollout_ids = repository.to_drive(session)
    for rollout_id in rollout_ids:
        defer_advance(rollout_id)
    return len(rollout_ids)
