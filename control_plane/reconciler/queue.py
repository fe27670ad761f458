"""The one way to ask for a workspace reconcile (a procrastinate job on the shared task queue)."""

from __future__ import annotations

import uuid
from datetime import datetime

from procrastinate.exceptions import AlreadyEnqueued

from control_plane.core.task_queue import app, ensure_sync_open

RECONCILE_TASK = "reconcile_workspace"
EXPEDITE_QUERY = """
UPDATE procrastinate_jobs SET scheduled_at = now()
 WHERE queueing_lock = %(queueing_lock)s AND status = 'todo' AND scheduled_at > now()
"""


def workspace_lock(workspace_id: uuid.UUID) -> str:
    """procrastinate ``lock``: never two reconcile jobs of one workspace at once."""
    return f"workspace:{workspace_id}"


def workspace_queueing_lock(workspace_id: uuid.UUID) -> str:
    """procrastinate ``queueing_lock``: at most one waiting reconcile job per workspace."""
    return f"reconcile:{workspace_id}"


def defer_reconcile(workspace_id: uuid.UUID, schedule_at: datetime | None = None) -> None:
    """Ask the workers to reconcile ``workspace_id`` (now, or not before ``schedule_at``).

    Idempotent: if a reconcile of this workspace is already waiting, that one will do (and is
    moved to now when this call asks for now).
    """
    ensure_sync_open()
    deferrer = app.configure_task(
        name=RECONCILE_TASK,
        lock=workspace_lock(workspace_id),
        queueing_lock=workspace_queueing_lock(workspace_id),
        schedule_at=schedule_at,
    )
    try:
        deferrer.defer(workspace_id=str(workspace_id))
    except AlreadyEnqueued:
        if schedule_at is None:  # the waiting job may sit in a backoff: bring it forward
            app.connector.get_sync_connector().execute_query(
                EXPEDITE_QUERY, queueing_lock=workspace_queueing_lock(workspace_id)
            )
