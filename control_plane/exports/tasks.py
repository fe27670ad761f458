"""The procrastinate tasks of workspace exports: one archive at a time per workspace (its procrastinate ``lock``), and
the hourly removal of archives past their retention."""

from __future__ import annotations

import contextlib
import uuid

from procrastinate.exceptions import AlreadyEnqueued

from control_plane.core.task_queue import app, ensure_sync_open, every
from control_plane.exports import service

EXPORT_TASK = "export_workspace"
RETENTION_TASK = "expire_exports"
RETENTION_SECONDS = 3600


def defer_export(export_id: uuid.UUID, workspace_id: uuid.UUID) -> None:
    """Ask the workers to make an export's archive (once: a second call while the job waits does nothing)."""
    ensure_sync_open()
    deferrer = app.configure_task(name=EXPORT_TASK, lock=f"export:{workspace_id}", queueing_lock=f"export:{export_id}")
    with contextlib.suppress(AlreadyEnqueued):
        deferrer.defer(export_id=str(export_id))


@app.task(name=EXPORT_TASK, pass_context=False)
def export_workspace(export_id: str) -> str:
    """procrastinate entry point of :func:`service.run`."""
    return service.run(uuid.UUID(export_id))


@app.periodic(cron=every(RETENTION_SECONDS), periodic_id=RETENTION_TASK)
@app.task(name=RETENTION_TASK, lock=RETENTION_TASK, queueing_lock=RETENTION_TASK, pass_context=False)
def expire_exports(timestamp: int) -> int:
    """Remove the archives of exports past ``export_keep_days``; returns how many."""
    return len(service.apply_retention())
