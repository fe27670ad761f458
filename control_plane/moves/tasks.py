"""The procrastinate task of enterprise moves: at the window, take the move's steps one transaction at a time; while
a step waits on the reconciler (the old server stopping and its final backup, the new silo's copy), the task defers
itself again a few seconds later. It takes the old workspace's reconcile lock, so it never runs beside that
workspace's reconcile; a worker that dies mid-move leaves the job to procrastinate's stalled-job recovery, which
takes the step again from what the move's row says (a reconcile it died before asking for is deferred by the
reconciler's periodic resync, which finds every workspace not yet converged)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from control_plane.core.clock import utcnow
from control_plane.core.db import session_scope
from control_plane.core.faults import fault_pause
from control_plane.core.task_queue import app, defer_once
from control_plane.moves import service
from control_plane.reconciler.queue import defer_reconcile, workspace_lock

MOVE_TASK = "move_to_enterprise"
POLL = timedelta(seconds=2)
"""How soon a waiting move looks again."""
MAX_STEPS = 8
"""Steps taken in one run at most (a move has four)."""


def defer_move(move_id: uuid.UUID, source_workspace_id: uuid.UUID, at: datetime) -> None:
    """Ask the workers to take the move's next steps at ``at`` by the product's clock (as that many seconds from
    now: the queue schedules by the database's own clock); once: a second call while the job waits does nothing."""
    defer_once(
        MOVE_TASK,
        f"enterprise-move:{move_id}",
        lock=workspace_lock(source_workspace_id),
        delay_seconds=(at - utcnow()).total_seconds(),
        move_id=str(move_id),
        source_workspace_id=str(source_workspace_id),
    )


def run(move_id: uuid.UUID) -> service.Outcome:
    """Take the move's steps until it ends or waits, each committed before the reconciles it asks for."""
    for _ in range(MAX_STEPS):
        with session_scope() as session:
            progress = service.advance(session, move_id)
            reached = progress.state.value if progress.state else "ended"
        for workspace_id, cause in progress.reconcile:
            defer_reconcile(workspace_id, cause)
        fault_pause(f"enterprise_move:{reached}")
        if progress.outcome is not service.Outcome.advanced:
            return progress.outcome
    return service.Outcome.waiting


@app.task(name=MOVE_TASK, pass_context=False)
def move_to_enterprise(move_id: str, source_workspace_id: str) -> str:
    """procrastinate entry point of :func:`run`; a waiting move is deferred again :data:`POLL` later."""
    outcome = run(uuid.UUID(move_id))
    if outcome is service.Outcome.waiting:
        defer_move(uuid.UUID(move_id), uuid.UUID(source_workspace_id), utcnow() + POLL)
    return outcome.value
