"""The procrastinate app: the control plane's one task queue, shared by every domain's tasks.

One ``App`` serves both sides:

- API processes are synchronous (FastAPI sync endpoints in a threadpool). The first sync defer
  opens procrastinate's ``SyncPsycopgConnector`` (a small ``psycopg_pool.ConnectionPool``).
- Worker processes open the app asynchronously (``App.run_worker``); sync tasks then run in
  threads and their defers are routed to the worker's event loop by procrastinate itself.

The connection string is resolved when a pool opens (psycopg_pool accepts a callable), so the
module can be imported before ``CANOPY_DATABASE_URL`` is known.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from procrastinate import App, PsycopgConnector
from procrastinate.exceptions import AlreadyEnqueued

from control_plane.core.db import database_url

POOL_MIN_SIZE = 1
POOL_MAX_SIZE = 8

app = App(connector=PsycopgConnector(conninfo=database_url, min_size=POOL_MIN_SIZE, max_size=POOL_MAX_SIZE))

_open_lock = threading.Lock()


def ensure_sync_open() -> None:
    """Open the sync connector once per process (no-op inside a worker, whose app is open async)."""
    with _open_lock:
        connector = app.connector.get_sync_connector()
        if connector is not app.connector:  # else the async pool is open (worker): nothing to do
            connector.open()


def close_sync_app() -> None:
    """Close the sync pool (tests switch databases; the CLI closes before exiting)."""
    with _open_lock:
        connector = app.connector.get_sync_connector()
        if connector is not app.connector:
            connector.close()


def defer_once(task: str, queueing_lock: str, lock: str | None = None, delay_seconds: float = 0, **kwargs: Any) -> None:
    """Defer ``task`` with ``kwargs`` unless a job with ``queueing_lock`` is waiting already (it will do the work);
    ``lock`` serialises it with other jobs, ``delay_seconds`` schedules it that far from now."""
    ensure_sync_open()
    schedule_in = {"seconds": delay_seconds} if delay_seconds > 0 else None
    deferrer = app.configure_task(name=task, queueing_lock=queueing_lock, lock=lock, schedule_in=schedule_in)
    with contextlib.suppress(AlreadyEnqueued):
        deferrer.defer(**kwargs)


def every(seconds: float) -> str:
    """A cron expression firing every ``seconds`` (6-field form below a minute; hourly and daily at most)."""
    whole = max(1, int(seconds))
    if whole < 60:
        return f"* * * * * */{whole}"
    if whole < 3600:
        return f"*/{max(1, whole // 60)} * * * *"
    if whole < 86400:
        return f"0 */{whole // 3600} * * *"
    return "0 0 * * *"
