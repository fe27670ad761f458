"""The server's health report to its control plane: every ``health_check_seconds`` the server checks that its
database answers and its files directory is writable, and sends what it found to ``POST
<control_plane_url>/api/v1/workspaces/<id>/health`` (with its control token) when that changed, and at least every
``health_report_seconds``: a healthy fleet costs a heartbeat per server and period, problems are reported at once.
The control plane's drift detection reconciles a workspace whose report names a problem, or whose reports stopped
while others' still arrive. Off unless both the control plane's URL and the workspace's id are configured; a report
that cannot be sent is sent again at the next check."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from workspace_server.background import in_background
from workspace_server.settings import Settings

log = logging.getLogger(__name__)
SEND_TIMEOUT_SECONDS = 5.0
CHECK_TIMEOUT_SECONDS = 5.0


async def problems(settings: Settings, engine: AsyncEngine) -> list[str]:
    """What is wrong with this server's own dependencies (empty: nothing)."""
    found = []
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except (TimeoutError, OSError, SQLAlchemyError):
        found.append("database unreachable")
    if not settings.s3_bucket and not os.access(settings.files_dir, os.W_OK):
        found.append("files directory not writable")
    return found


async def _send(settings: Settings, found: list[str]) -> None:
    """POST the report over a connection of its own (asyncio streams: no thread, which a server forked by the fork
    server could not start safely); an answer other than 2xx is an OSError."""
    url = urlsplit(settings.control_plane_url)
    secure = url.scheme == "https"
    path = f"{url.path.rstrip('/')}/api/v1/workspaces/{settings.workspace_id}/health"
    body = json.dumps({"problems": found}).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {settings.control_token.get_secret_value()}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    async with asyncio.timeout(SEND_TIMEOUT_SECONDS):
        reader, writer = await asyncio.open_connection(url.hostname, url.port or (443 if secure else 80), ssl=secure)
        try:
            writer.write(head.encode() + body)
            await writer.drain()
            status = (await reader.readline()).split(b" ", 2)
        finally:
            writer.close()
    if len(status) < 2 or not status[1].startswith(b"2"):
        raise OSError(f"the control plane answered {b' '.join(status[1:]).decode(errors='replace').strip()}")


async def report_changes(settings: Settings, engine: AsyncEngine) -> None:
    """Check every ``health_check_seconds``; report at start, on a change, and after ``health_report_seconds``
    without a report; until cancelled."""
    sent: list[str] | None = None
    sent_at = -math.inf
    while True:
        found = await problems(settings, engine)
        if found != sent or time.monotonic() - sent_at >= settings.health_report_seconds:
            try:
                await _send(settings, found)
                sent, sent_at = found, time.monotonic()
            except (OSError, TimeoutError) as exc:
                log.info("health report not sent: %s", exc)
        await asyncio.sleep(settings.health_check_seconds)


@contextlib.asynccontextmanager
async def reporting(settings: Settings, engine: AsyncEngine) -> AsyncIterator[None]:
    """Send health reports for the server's life (when configured)."""
    if not (settings.control_plane_url and settings.workspace_id):
        yield
        return
    async with in_background(report_changes(settings, engine)):
        yield
