"""The database engine and the per-request connection dependency."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from workspace_server import events
from workspace_server.settings import Settings

CONNECT_TIMEOUT_SECONDS = 5


def create_engine(settings: Settings) -> AsyncEngine:
    """An async engine with a connection pool, for the psycopg 3 driver."""
    return create_async_engine(
        settings.sqlalchemy_url(),
        pool_size=settings.db_pool_size,
        max_overflow=10,
        pool_recycle=1800,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS, "application_name": "canopy-workspace"},
    )


async def _connection(request: Request) -> AsyncIterator[AsyncConnection]:
    engine: AsyncEngine = request.app.state.engine
    async with engine.connect() as conn:
        try:
            yield conn
        except BaseException:
            events.discard(conn)
            raise
        # Realtime events of what the request committed (those a route has not published itself).
        await events.flush(conn)
        events.discard(conn)


Conn = Annotated[AsyncConnection, Depends(_connection)]
"""A pooled connection for the request; routes that write call ``await conn.commit()`` themselves,
anything not committed is rolled back when the request ends, and the events deferred (:func:`events.defer`) on
committed transactions are published then."""
