"""The one way to ask for a workspace reconcile (a procrastinate job on the shared task queue)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from procrastinate.exceptions import AlreadyEnqueued

from control_plane.core.task_queue import app, ensure_sync_open

RECONCILE_TASK = "reconcile_workspace"
RECONCILES = "reconciles"
"""Counter of reconciles run (label: cause), read by ``/metrics``."""


class Cause(StrEnum):
    """Why a reconcile was asked for (the ``cause`` of ``canopy_reconciles_total``); it sets the job's priority."""

    wake = "wake"
    signup = "signup"
    restore = "restore"
    lifecycle = "lifecycle"
    deletion = "deletion"
    billing = "billing"
    operator = "operator"
    drift = "drift"
    upgrade = "upgrade"
    retry = "retry"
    resync = "resync"
    verify = "verify"


PRIORITIES: dict[Cause, int] = {
    Cause.wake: 30,
    Cause.signup: 20,
    Cause.restore: 20,
    Cause.lifecycle: 10,
    Cause.deletion: 10,
    Cause.billing: 10,
    Cause.operator: 10,
    Cause.drift: 10,
    Cause.upgrade: 10,
    Cause.retry: 5,
    Cause.resync: 0,
    Cause.verify: 0,
}
"""Workers take waiting jobs of a higher priority first: a request waiting on a hibernated workspace, then new
customers' workspaces and restores, then owners' and operators' changes and repairs of drift found, retries, and last
the background resync and the slow re-verification (procrastinate's default 0, like every other task), so that a
fleet-wide resync or re-verification never delays a signup."""
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


def defer_reconcile(workspace_id: uuid.UUID, cause: Cause, schedule_at: datetime | None = None) -> None:
    """Ask the workers to reconcile ``workspace_id`` (now, or not before ``schedule_at``) because of ``cause``,
    before waiting jobs of a lower priority (:data:`PRIORITIES`).

    Idempotent: if a reconcile of this workspace is already waiting, that one will do (and is moved to now, and up
    to this cause's priority, when this call asks for now; it keeps its own cause).
    """
    ensure_sync_open()
    priority = PRIORITIES[cause]
    deferrer = app.configure_task(
        name=RECONCILE_TASK,
        lock=workspace_lock(workspace_id),
        queueing_lock=workspace_queueing_lock(workspace_id),
        schedule_at=schedule_at,
        priority=priority,
    )
    try:
        deferrer.defer(workspace_id=str(workspace_id), cause=cause.value)
    except AlreadyEnqueued:
        if schedule_at is None:  # the waiting job may sit in a backoff: bring it forward
            app.connector.get_sync_connector().execute_query(
                EXPEDITE_QUERY, queueing_lock=workspace_queueing_lock(workspace_id), priority=priority
            )


BACKGROUND: frozenset[Cause] = frozenset({Cause.resync, Cause.verify})
"""Causes whose reconciles share :attr:`~control_plane.core.settings.Settings.background_reconcile_limit`."""
BACKGROUND_QUERY = """
SELECT count(*) AS count FROM procrastinate_jobs
 WHERE task_name = %(task)s AND status = 'doing' AND args->>'cause' = ANY(%(causes)s)
"""


def background_running() -> int:
    """How many background reconciles (:data:`BACKGROUND`) are running now, across all workers."""
    ensure_sync_open()
    row = app.connector.get_sync_connector().execute_query_one(
        BACKGROUND_QUERY, task=RECONCILE_TASK, causes=[cause.value for cause in BACKGROUND]
    )
    return int(row["count"])


RUNNING_QUERY = """
SELECT lock FROM procrastinate_jobs WHERE task_name = %(task)s AND status = 'doing' AND lock LIKE 'workspace:%%'
"""


def running_reconciles() -> set[uuid.UUID]:
    """The workspaces a worker is reconciling now (their running job records its outcome and any retry itself)."""
    ensure_sync_open()
    rows = app.connector.get_sync_connector().execute_query_all(RUNNING_QUERY, task=RECONCILE_TASK)
    return {uuid.UUID(str(row["lock"]).removeprefix("workspace:")) for row in rows}


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


QUEUE_QUERY = """
SELECT count(*) FILTER (WHERE j.status = 'todo' AND (j.scheduled_at IS NULL OR j.scheduled_at <= now())) AS due,
       count(*) FILTER (WHERE j.status = 'todo' AND j.scheduled_at > now()) AS scheduled,
       count(*) FILTER (WHERE j.status = 'doing') AS running,
       coalesce(extract(epoch FROM now() - min(greatest(j.scheduled_at, d.at))
                FILTER (WHERE j.status = 'todo' AND (j.scheduled_at IS NULL OR j.scheduled_at <= now()))), 0)
           AS oldest_due_seconds
  FROM procrastinate_jobs j
  LEFT JOIN LATERAL (SELECT min(e.at) AS at FROM procrastinate_events e
                      WHERE e.job_id = j.id AND e.type = 'deferred') d ON true
 WHERE j.task_name = %(task)s AND j.status IN ('todo', 'doing')
"""


def queue_figures() -> dict[str, float]:
    """Reconcile jobs due now (waiting for a worker), scheduled later (retries' backoffs), running, and how long the
    oldest due one has waited since it was due (seconds; 0 when none waits)."""
    ensure_sync_open()
    row = app.connector.get_sync_connector().execute_query_one(QUEUE_QUERY, task=RECONCILE_TASK)
    return {name: float(row[name]) for name in ("due", "scheduled", "running", "oldest_due_seconds")}
