"""The procrastinate task of workspace exports: one archive at a time per workspace (its procrastinate ``lock``)."""

from __future__ import annotations

import contextlib
import uuid

from procrastinate.exceptions import AlreadyEnqueued

from control_plane.core.task_queue import app, ensure_sync_open
from control_plane.exports import service

EXPORT_TASK = "export_workspace"


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
