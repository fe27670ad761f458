"""The procrastinate task of workspace backups. A backup job takes its workspace's reconcile lock, so it never runs
beside that workspace's reconcile (where restores run) nor beside another backup of it."""

from __future__ import annotations

import contextlib
import uuid

from procrastinate.exceptions import AlreadyEnqueued

from control_plane.backups import service
from control_plane.core.task_queue import app, ensure_sync_open
from control_plane.reconciler.queue import workspace_lock

BACKUP_TASK = "back_up_workspace"


def defer_backup(backup_id: uuid.UUID, workspace_id: uuid.UUID) -> None:
    """Ask the workers to take a queued backup (once: a second call while the job waits does nothing)."""
    ensure_sync_open()
    deferrer = app.configure_task(
        name=BACKUP_TASK, lock=workspace_lock(workspace_id), queueing_lock=f"backup:{backup_id}"
    )
    with contextlib.suppress(AlreadyEnqueued):
        deferrer.defer(backup_id=str(backup_id))


@app.task(name=BACKUP_TASK, pass_context=False)
def back_up_workspace(backup_id: str) -> str:
    """procrastinate entry point of :func:`service.run`."""
    outcome = service.run(uuid.UUID(backup_id))
    if outcome is None:
        return "nothing to do"
    return f"{outcome.state.value}" + (f": {outcome.error}" if outcome.error else "")
