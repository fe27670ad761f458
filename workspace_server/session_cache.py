"""A short-lived, process-local cache of bearer token -> session (Mattermost keeps one too), so that most
requests authenticate without a query.

Correctness comes first: the whole cache is dropped whenever a statement writes to a table a session depends on
(``sessions``, ``users``, ``user_access_tokens``, ``bots``) on any connection of the engine, right after that
statement and again when its transaction commits or rolls back; other replicas drop theirs when the commit's
``canopy_sessions_changed`` event reaches them (see :mod:`workspace_server.events`). A lookup that was in flight
while the cache was dropped is not kept. Entries also expire after :data:`CACHE_SECONDS` (a safety net for
writes made outside this server) and never outlive their session's ``expires_at``."""

from __future__ import annotations

import re
import time
import weakref
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import event as sa_event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

CACHE_SECONDS: Final = 10.0
CACHE_MAX_ENTRIES: Final = 20_000
SESSIONS_CHANGED: Final = "canopy_sessions_changed"
"""The internal event that tells the other replicas to drop their cache."""
_DIRTY_KEY: Final = "canopy.sessions_dirty"
_WRITES_AUTH_TABLES = re.compile(
    r"\b(?:UPDATE|INSERT\s+INTO|DELETE\s+FROM|TRUNCATE(?:\s+TABLE)?)\s+(?:ONLY\s+)?"
    r"\"?(?:users|sessions|user_access_tokens|bots)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Entry:
    """A cached lookup: what the token stands for, until when."""

    value: Any
    expires_at_ms: int
    cached_until: float


_entries: dict[str, Entry] = {}
_generation = 0
_tracked: weakref.WeakSet[Any] = weakref.WeakSet()


def generation() -> int:
    """Changes whenever the cache is dropped: read it before a lookup, pass it to :func:`put`."""
    return _generation


def get(key: str, now_ms: int) -> Any | None:
    """The cached value for ``key``, if still valid."""
    entry = _entries.get(key)
    if entry is None:
        return None
    if entry.cached_until < time.monotonic() or entry.expires_at_ms <= now_ms:
        _entries.pop(key, None)
        return None
    return entry.value


def put(key: str, value: Any, expires_at_ms: int, since_generation: int) -> None:
    """Cache ``value`` unless the cache was dropped since ``since_generation`` was read."""
    if since_generation != _generation:
        return
    if len(_entries) >= CACHE_MAX_ENTRIES:
        _entries.clear()
    _entries[key] = Entry(value, expires_at_ms, time.monotonic() + CACHE_SECONDS)


def invalidate() -> None:
    """Drop every cached session."""
    global _generation
    _generation += 1
    _entries.clear()


_writes_auth_tables: dict[str, bool] = {}
"""Whether each SQL string seen writes an auth table (SQLAlchemy reuses its compiled strings, so a lookup here
costs a dict access with the string's cached hash)."""


def _writes_auth(statement: str) -> bool:
    found = _writes_auth_tables.get(statement)
    if found is None:
        if len(_writes_auth_tables) > 10_000:
            _writes_auth_tables.clear()
        found = _writes_auth_tables[statement] = _WRITES_AUTH_TABLES.search(statement) is not None
    return found


def _after_execute(conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
    if _writes_auth(statement):
        conn.info[_DIRTY_KEY] = True
        invalidate()


def _on_end(conn: Connection) -> bool:
    if conn.info.pop(_DIRTY_KEY, False):
        invalidate()
        return True
    return False


def _on_rollback(conn: Connection) -> None:
    _on_end(conn)


def track_writes(engine: AsyncEngine, on_commit: Any) -> None:
    """Drop the cache on writes through ``engine`` (see the module docstring); ``on_commit(conn)`` is called with
    the committing connection after a commit that changed sessions, to tell the other replicas."""

    def committed(conn: Connection) -> None:
        if _on_end(conn):
            on_commit(conn)

    sync = engine.sync_engine
    if sync in _tracked:
        return
    _tracked.add(sync)
    sa_event.listen(sync, "after_cursor_execute", _after_execute)
    sa_event.listen(sync, "commit", committed)
    sa_event.listen(sync, "rollback", _on_rollback)
