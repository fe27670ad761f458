"""The procrastinate app of the control plane, and the one way to ask for a workspace reconcile.

One ``App`` serves both sides:

- API processes are synchronous (FastAPI sync endpoints in a threadpool). The first sync defer
  opens procrastinate's ``SyncPsycopgConnector`` (a small ``psycopg_pool.ConnectionPool``).
- Worker processes open the app asynchronously (``App.run_worker``); sync tasks then run in
  threads and their defers are routed to the worker's event loop by procrastinate itself.

The connection string is resolved when a pool opens (psycopg_pool accepts a callable), so the
module can be imported before ``CANOPY_DATABASE_URL`` is known.
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import datetime

from procrastinate import App, PsycopgConnector
from procrastinate.exceptions import AlreadyEnqueued

from control_plane.core.db import database_url

logger = logging.getLogger(__name__)

RECONCILE_TASK = "reconcile_workspace"
POOL_MIN_SIZE = 1
POOL_MAX_SIZE = 8
EXPEDITE_QUERY = """
UPDATE procrastinate_jobs SET scheduled_at = now()
 WHERE queueing_lock = %(queueing_lock)s AND status = 'todo' AND scheduled_at > now()
"""

app = App(connector=PsycopgConnector(conninfo=database_url, min_size=POOL_MIN_SIZE, max_size=POOL_MAX_SIZE))

_open_lock = threading.Lock()


def workspace_lock(workspace_id: uuid.UUID) -> str:
    """procrastinate ``lock``: never two reconcile jobs of one workspace at once."""
    return f"workspace:{workspace_id}"


def workspace_queueing_lock(workspace_id: uuid.UUID) -> str:
    """procrastinate ``queueing_lock``: at most one waiting reconcile job per workspace."""
    return f"reconcile:{workspace_id}"


def _ensure_sync_open() -> None:
    """Open the sync connector once per process (no-op inside a worker, whose app is open async)."""
    with _open_lock:
        connector = app.connector.get_sync_connector()
        if connector is not app.connector:  # else the async pool is open (worker): nothing to do
            connector.open()


def defer_reconcile(workspace_id: uuid.UUID, schedule_at: datetime | None = None) -> None:
    """Ask the workers to reconcile ``workspace_id`` (now, or not before ``schedule_at``).

    Idempotent: if a reconcile of this workspace is already waiting, that one will do (and is
    moved to now when this call asks for now).
    """
    _ensure_sync_open()
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


def close_sync_app() -> None:
    """Close the sync pool (tests switch databases; the CLI closes before exiting)."""
    with _open_lock:
        connector = app.connector.get_sync_connector()
        if connector is not app.connector:
            connector.close()
