"""User statuses (``/api/v4/users/{user_id}/status``, ``/api/v4/users/status/ids``) and presence.

As in Mattermost, a status is ``online``, ``away``, ``dnd`` or ``offline``; one a user sets themselves is
``manual`` and stays until they change it (setting ``online`` clears ``manual``). Without one, presence decides:
a user is ``online`` from their first WebSocket connection and ``offline`` when their last one closes. A change is
announced to the user's own connections by ``status_change`` (other clients poll ``/users/status/ids``, as
Mattermost's web app does).

Approximations, kept simple on purpose:

- presence is counted per replica: a user connected to two replicas who closes every connection on one of them
  shows ``offline`` until they next connect; a replica that dies leaves its users ``online`` until then too;
- there is no idle detection (nothing turns an automatic ``online`` into ``away``);
- a timed ``dnd`` reads as its previous status once ``dnd_end_time`` has passed, without a ``status_change``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable
from typing import Annotated, Any, Final

from fastapi import APIRouter, Body
from pydantic import BaseModel
from sqlalchemy import exists, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from workspace_server.auth import CurrentSession
from workspace_server.db import Conn
from workspace_server.events import Broadcast, Hub, defer, publish
from workspace_server.ids import is_valid_id, now_ms
from workspace_server.schema import statuses, users
from workspace_server.users import resolve_user_id, user_not_found
from workspace_server.web import JSONResponse, invalid_body_param, permission_error

router = APIRouter(prefix="/api/v4/users")
log = logging.getLogger(__name__)

ONLINE: Final = "online"
AWAY: Final = "away"
DND: Final = "dnd"
OFFLINE: Final = "offline"
STATUSES: Final = frozenset({ONLINE, AWAY, DND, OFFLINE})
IDS_PER_REQUEST_MAX: Final = 1000
DND_END_TIME_MAX: Final = 2**53
"""Largest ``dnd_end_time`` (Unix seconds) accepted: beyond JavaScript's safe integers no client could send it."""


def status_json(user_id: str, row: Any = None) -> dict[str, Any]:
    """Mattermost's ``Status`` JSON for ``user_id`` from its row (``offline`` without one)."""
    if row is None:
        return {"user_id": user_id, "status": OFFLINE, "manual": False, "last_activity_at": 0, "dnd_end_time": 0}
    status, dnd_end_time = row["status"], row["dnd_end_time"]
    if status == DND and 0 < dnd_end_time <= time.time():
        status, dnd_end_time = row["prev_status"] or OFFLINE, 0
    return {
        "user_id": user_id,
        "status": status,
        "manual": row["manual"] and status == row["status"],
        "last_activity_at": row["last_activity_at"],
        "dnd_end_time": dnd_end_time,
    }


async def statuses_of(conn: AsyncConnection, user_ids: Iterable[str]) -> list[dict[str, Any]]:
    """The statuses of ``user_ids`` (each once, in order; ``offline`` for those without a row)."""
    wanted = list(dict.fromkeys(user_ids))
    rows = (await conn.execute(select(statuses).where(statuses.c.user_id.in_(wanted)))).mappings()
    by_user = {r["user_id"]: r for r in rows}
    return [status_json(user_id, by_user.get(user_id)) for user_id in wanted]


async def active_statuses(conn: AsyncConnection) -> dict[str, str]:
    """Every user who is not ``offline``, and their status (the WebSocket's ``get_statuses``)."""
    rows = (await conn.execute(select(statuses).where(statuses.c.status != OFFLINE))).mappings()
    found = (status_json(r["user_id"], r) for r in rows)
    return {s["user_id"]: s["status"] for s in found if s["status"] != OFFLINE}


@router.get("/{user_id}/status")
async def get_user_status(user_id: str, conn: Conn, session: CurrentSession) -> JSONResponse:
    """A user's status (anyone signed in may ask)."""
    target = resolve_user_id(user_id, session)
    return JSONResponse((await statuses_of(conn, [target]))[0])


@router.post("/status/ids")
async def get_statuses_by_ids(
    user_ids: Annotated[list[str], Body()], conn: Conn, session: CurrentSession
) -> JSONResponse:
    """The statuses of the given users."""
    if not user_ids or len(user_ids) > IDS_PER_REQUEST_MAX or not all(map(is_valid_id, user_ids)):
        raise invalid_body_param("user_ids")
    return JSONResponse(await statuses_of(conn, user_ids))


class StatusBody(BaseModel):
    """``PUT /users/{user_id}/status``."""

    user_id: str = ""
    status: str = ""
    dnd_end_time: int = 0


def _new_row(target: str, body: StatusBody, current: Any) -> dict[str, Any]:
    """The row a manual change to ``body.status`` stores (Mattermost: ``online`` is never manual, ``dnd``
    remembers the status it interrupts, its end time truncated to the minute)."""
    row: dict[str, Any] = {
        "user_id": target,
        "status": body.status,
        "manual": body.status != ONLINE,
        "last_activity_at": now_ms(),
        "dnd_end_time": 0,
        "prev_status": "",
    }
    if body.status == DND:
        previous = status_json(target, current)["status"]
        row["prev_status"] = previous if previous != DND else (current["prev_status"] if current else "")
        row["dnd_end_time"] = body.dnd_end_time - body.dnd_end_time % 60
    return row


@router.put("/{user_id}/status")
async def update_user_status(user_id: str, body: StatusBody, conn: Conn, session: CurrentSession) -> JSONResponse:
    """Set a user's status by hand (their own, or anyone's for a system admin); ``status_change`` to them."""
    target = resolve_user_id(user_id, session)
    if body.user_id != target:
        raise invalid_body_param("user_id")
    if target != session.user_id and not session.is_system_admin:
        raise permission_error()
    if body.status not in STATUSES:
        raise invalid_body_param("status")
    if not 0 <= body.dnd_end_time <= DND_END_TIME_MAX:
        raise invalid_body_param("dnd_end_time")
    if not await conn.scalar(select(exists().where(users.c.id == target, users.c.delete_at == 0))):
        raise user_not_found()
    current = (await conn.execute(select(statuses).where(statuses.c.user_id == target))).mappings().first()
    row = _new_row(target, body, current)
    statement = insert(statuses).values(row)
    await conn.execute(statement.on_conflict_do_update(index_elements=[statuses.c.user_id], set_=row))
    defer(conn, "status_change", {"status": row["status"], "user_id": target}, Broadcast(user_id=target))
    await conn.commit()
    return JSONResponse(status_json(target, row))


# --- presence --------------------------------------------------------------------------------------------------


class _KeyedLocks:
    """One asyncio lock per key, kept only while someone holds or awaits it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Hold ``key``'s lock for the ``async with`` block."""
        lock, holders = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, holders + 1)
        try:
            async with lock:
                yield
        finally:
            holders = self._locks[key][1] - 1
            if holders:
                self._locks[key] = (lock, holders)
            else:
                del self._locks[key]


_presence_locks = _KeyedLocks()


async def presence_changed(hub: Hub, user_id: str) -> None:
    """Bring the user's automatic status in line with whether they have a WebSocket open on this replica, after
    their first one opened or their last one closed (a manual status stays); ``status_change`` to them if it
    changed. Best effort: a database problem is logged, not raised."""
    try:
        # Deciding and writing under one lock per user: the last write always reflects the last change.
        async with _presence_locks.hold(user_id):
            await _write_presence(hub.engine, user_id, ONLINE if hub.is_online(user_id) else OFFLINE)
    except Exception as exc:
        log.warning("recording the presence of user %s failed: %s", user_id, type(exc).__name__)


async def _write_presence(engine: AsyncEngine, user_id: str, status: str) -> None:
    statement = insert(statuses).values(user_id=user_id, status=status, manual=False, last_activity_at=now_ms())
    statement = statement.on_conflict_do_update(
        index_elements=[statuses.c.user_id],
        set_={"status": statement.excluded.status, "last_activity_at": statement.excluded.last_activity_at},
        where=(statuses.c.manual.is_(False)) & (statuses.c.status != statement.excluded.status),
    )
    async with engine.connect() as conn:
        changed = (await conn.execute(statement.returning(statuses.c.user_id))).first() is not None
        await conn.commit()
    if changed:
        await publish("status_change", {"status": status, "user_id": user_id}, Broadcast(user_id=user_id))
