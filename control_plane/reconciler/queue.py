"""The one way to ask for a workspace reconcile (a procrastinate job on the shared task queue)."""

from __future__ import annotations

import uuid
from datetime import datetime

from procrastinate.exceptions import AlreadyEnqueued

from control_plane.core.task_queue import app, ensure_sync_open

RECONCILE_TASK = "reconcile_workspace"
WAKE_PRIORITY = 10
"""Priority of the reconcile that wakes a workspace for a waiting request (others have procrastinate's default, 0):
workers take it before any other waiting job."""
EXPEDITE_QUERY = """
UPDATE procrastinate_jobs
   SET scheduled_at = CASE WHEN scheduled_at > now() THEN now() ELSE scheduled_at END,
       priority = GREATEST(priority, %(priority)s)
 WHERE queueing_lock = %(queueing_lock)s AND status = 'todo' AND (scheduled_at > now() OR priority < %(priority)s)
"""


JOBS_QUERY = """
SELECT status::text AS status, count(*) AS count FROM procrastinate_jobs
 WHERE lock = %(lock)s AND status IN ('todo', 'doing') GROUP BY status
"""
LIVE_WORKERS_QUERY = """
SELECT count(*) AS count FROM procrastinate_workers WHERE last_heartbeat > now() - %(age)s * interval '1 second'
"""


def workspace_lock(workspace_id: uuid.UUID) -> str:
    """procrastinate ``lock``: never two reconcile jobs of one workspace at once."""
    return f"workspace:{workspace_id}"


def workspace_queueing_lock(workspace_id: uuid.UUID) -> str:
    """procrastinate ``queueing_lock``: at most one waiting reconcile job per workspace."""
    return f"reconcile:{workspace_id}"


def defer_reconcile(workspace_id: uuid.UUID, schedule_at: datetime | None = None, priority: int = 0) -> None:
    """Ask the workers to reconcile ``workspace_id`` (now, or not before ``schedule_at``), before waiting jobs of a
    lower ``priority``.

    Idempotent: if a reconcile of this workspace is already waiting, that one will do (and is
    moved to now, and up to ``priority``, when this call asks for now).
    """
    ensure_sync_open()
    deferrer = app.configure_task(
        name=RECONCILE_TASK,
        lock=workspace_lock(workspace_id),
        queueing_lock=workspace_queueing_lock(workspace_id),
        schedule_at=schedule_at,
        priority=priority,
    )
    try:
        deferrer.defer(workspace_id=str(workspace_id))
    except AlreadyEnqueued:
        if schedule_at is None:  # the waiting job may sit in a backoff: bring it forward
            app.connector.get_sync_connector().execute_query(
                EXPEDITE_QUERY, queueing_lock=workspace_queueing_lock(workspace_id), priority=priority
            )


def reconcile_queue(workspace_id: uuid.UUID, heartbeat_age: float) -> dict[str, int]:
    """The workspace's reconcile jobs waiting and running, and the workers that sent a heartbeat within
    ``heartbeat_age`` seconds (what an operator checks when a workspace does not come up)."""
    ensure_sync_open()
    connector = app.connector.get_sync_connector()
    jobs = {
        row["status"]: row["count"]
        for row in connector.execute_query_all(JOBS_QUERY, lock=workspace_lock(workspace_id))
    }
    workers = connector.execute_query_one(LIVE_WORKERS_QUERY, age=heartbeat_age)
    return {"waiting": int(jobs.get("todo", 0)), "running": int(jobs.get("doing", 0)), "workers": int(workers["count"])}
