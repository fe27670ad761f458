"""When the workspace was last used, for the control plane's idle hibernation (``GET /api/v4/canopy/activity``).

Used means: an HTTP request other than the control plane's (``/api/v4/canopy/...``, ``/metrics``) and pings
(``/system/ping``, which the control plane's supervisor and Kubernetes probes send all day), or an open WebSocket (a
connected client counts as using the workspace for as long as it stays connected). A process starts as used, so that
a server just started (a workspace just woken) gets a whole idle period.

Each process keeps its own time in memory (one clock read per request). Several processes (``WS_WORKERS``) or
replicas share it through the one-row table ``canopy_activity``: each writes its time there every
``WS_ACTIVITY_FLUSH_SECONDS`` when it has been used since its last write (``GREATEST``, so the row only moves
forward), and the endpoint answers the later of its own time and the row's. Another process's use is thus seen at
most that many seconds late: the control plane's idle period must be much longer (it is hours).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from starlette.types import ASGIApp, Receive, Scope, Send

from workspace_server.background import in_background
from workspace_server.schema import canopy_activity

log = logging.getLogger(__name__)

UNCOUNTED_PREFIXES: Final = ("/api/v4/canopy/", "/api/v4/system/ping", "/metrics")
"""Requests that are not use: the control plane's own calls and scrapes, and pings."""


def _now_ms() -> int:
    return int(time.time() * 1000)


class Activity:
    """This process's last use, in ms since the epoch, and its open WebSockets."""

    def __init__(self) -> None:
        self.last_ms = _now_ms()
        self.open_sockets = 0
        self.flushed_ms = 0

    def touch(self) -> None:
        """A request arrived (or a WebSocket closed)."""
        self.last_ms = _now_ms()

    def local_ms(self) -> int:
        """This process's last use: now while a WebSocket is open."""
        return _now_ms() if self.open_sockets else self.last_ms

    async def flush(self, engine: AsyncEngine) -> None:
        """Write this process's last use to the shared row if it moved since the last write."""
        last = self.local_ms()
        if last <= self.flushed_ms:
            return
        row = insert(canopy_activity).values(id=True, last_request_at=last)
        later = func.greatest(canopy_activity.c.last_request_at, row.excluded.last_request_at)
        statement = row.on_conflict_do_update(index_elements=[canopy_activity.c.id], set_={"last_request_at": later})
        async with engine.begin() as conn:
            await conn.execute(statement)
        self.flushed_ms = last

    async def flush_every(self, engine: AsyncEngine, seconds: float) -> None:
        """Flush every ``seconds`` until cancelled (a failed write is logged and tried again next time)."""
        while True:
            await asyncio.sleep(seconds)
            try:
                await self.flush(engine)
            except (OSError, SQLAlchemyError) as exc:
                log.warning("activity not recorded: %s", type(exc).__name__)

    async def last_use_ms(self, conn: AsyncConnection) -> int:
        """The workspace's last use as far as this process knows: its own, or another's from the shared row."""
        stored = await conn.scalar(select(canopy_activity.c.last_request_at))
        return max(self.local_ms(), int(stored or 0))


class ActivityMiddleware:
    """Pure ASGI middleware recording uses in ``activity`` (around the request-handling middleware, so that every
    path counts)."""

    def __init__(self, app: ASGIApp, activity: Activity) -> None:
        self.app = app
        self.activity = activity

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count the request (or hold the WebSocket open in the count), then pass it on."""
        if scope["type"] == "http":
            if not scope["path"].startswith(UNCOUNTED_PREFIXES):
                self.activity.touch()
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            self.activity.open_sockets += 1
            try:
                await self.app(scope, receive, send)
            finally:
                self.activity.open_sockets -= 1
                self.activity.touch()
        else:
            await self.app(scope, receive, send)


@contextlib.asynccontextmanager
async def flushing(activity: Activity, engine: AsyncEngine, seconds: float) -> AsyncIterator[None]:
    """Run :meth:`Activity.flush_every` for the server's life, and flush once more when it stops."""
    try:
        async with in_background(activity.flush_every(engine, seconds)):
            yield
    finally:
        with contextlib.suppress(OSError, SQLAlchemyError):
            await activity.flush(engine)
