"""Realtime events: the publish API that mutations call, and the per-process hub that delivers events to the
open WebSocket connections allowed to see them.

Publishing::

    await publish("posted", {...}, Broadcast(channel_id=channel_id))   # after the mutation is committed

An event is serialised (and UTF-8 encoded) once, as Mattermost's envelope ``{"event", "data", "broadcast",
"seq"}`` up to the value of ``seq``; each connection appends its own ``seq`` (``N}``) and a frame header, so a
post to a channel of 1,000 open connections costs one ``json.dumps`` and 1,000 small byte concatenations and
socket writes.

Delivery: with ``WS_REDIS_URL`` set, an event goes through Redis pub/sub (channel ``ws:<team name>:events``,
messages tagged with the team's id so that workspaces sharing a Redis never mix) so every replica of the
workspace receives it, and each replica's subscriber hands it to its local hub; without
Redis it goes straight to the local hub. The hub delivers events in publication order, after checking who may
see them (Mattermost's rules):

- ``broadcast.user_id`` set: only that user's connections;
- else ``channel_id`` set: only current members of that channel (memberships cached per channel, dropped on
  ``user_added``/``user_removed``/``channel_deleted``/``leave_team`` events and after :data:`MEMBERS_TTL_SECONDS`);
- else ``team_id`` set: only active members of that team;
- else everyone connected;

and never to a user in ``omit_users``.

Code that writes inside a transaction queues its events with :func:`defer`: they are published only if that
transaction commits, by :func:`flush` (which the request's connection dependency calls when the request ends,
and which a route may call right after its commit to get the event out before its response).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.engine import Connection as Connection_
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from workspace_server import session_cache
from workspace_server.ids import now_ms
from workspace_server.schema import channel_members, sessions, team_members, teams, users

log = logging.getLogger(__name__)

MEMBERS_TTL_SECONDS: Final = 30.0
"""How long a cached member list may be used without an event saying it changed (a safety net only)."""
SESSION_SWEEP_SECONDS: Final = 60.0
"""How often open connections are checked against their sessions (revoked, expired, user deactivated)."""
SEND_QUEUE_MAX: Final = 4096
"""Events waiting for a slow connection before it is closed (its client then reconnects and resyncs)."""
SEND_BUFFER_MAX_BYTES: Final = 16 * 1024 * 1024
"""The same limit for connections written directly: bytes the socket has not accepted yet."""
REDIS_SUBSCRIBE_TIMEOUT_SECONDS: Final = 5.0
DELIVERY_SLICE: Final = 200
"""Connections written to between two yields to the event loop while an event fans out."""

# Internal events travel like the others but are never sent to clients.
_DISCONNECT_USER: Final = "canopy_disconnect_user"
# Events after which cached memberships may be stale.
_CHANNEL_MEMBERSHIP_EVENTS: Final = frozenset({"user_added", "user_removed", "channel_deleted", "channel_restored"})
_TEAM_MEMBERSHIP_EVENTS: Final = frozenset({"added_to_team", "leave_team", "update_team", "delete_team"})


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Who may receive an event (see the module docstring for the rules)."""

    channel_id: str = ""
    team_id: str = ""
    user_id: str = ""
    omit_users: frozenset[str] = frozenset()


def dumps(value: Any) -> str:
    """Compact JSON: the envelope's encoding, and that of the JSON strings some events carry in their data."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def envelope_prefix(event: str, data: dict[str, Any], broadcast: Broadcast) -> str:
    """The event's JSON envelope up to and including ``"seq":``; a connection appends ``f"{seq}}}"``."""
    wire_broadcast = {
        "omit_users": {user_id: True for user_id in sorted(broadcast.omit_users)} or None,
        "user_id": broadcast.user_id,
        "channel_id": broadcast.channel_id,
        "team_id": broadcast.team_id,
        "connection_id": "",
        "omit_connection_id": "",
    }
    return f'{{"event":{dumps(event)},"data":{dumps(data)},"broadcast":{dumps(wire_broadcast)},"seq":'


def _frame_header(length: int) -> bytes:
    """The header of an unmasked, final WebSocket text frame of ``length`` payload bytes (RFC 6455 5.2)."""
    if length < 126:
        return bytes((0x81, length))
    if length < 65536:
        return b"\x81\x7e" + length.to_bytes(2, "big")
    return b"\x81\x7f" + length.to_bytes(8, "big")


class Connection:
    """One open WebSocket connection as the hub sees it: who it is, and how to send to it. Server events get
    ``seq`` 0, 1, 2, ... in sending order; replies to client actions carry ``seq_reply`` instead.

    Messages go either straight to the socket's transport as ready-made frames (:meth:`use_transport`: no task
    switch, no per-connection encoding of the shared envelope), or through a queue that the connection's
    writer task drains with the ASGI ``send`` (any other ASGI server)."""

    __slots__ = (
        "_queue",
        "_ready",
        "_transport",
        "close_code",
        "closed",
        "connection_id",
        "seq",
        "session_id",
        "user_id",
    )

    def __init__(self, connection_id: str, user_id: str, session_id: str) -> None:
        self.connection_id = connection_id
        self.user_id = user_id
        self.session_id = session_id
        self.seq = 0
        self.closed = False
        self.close_code = 1000
        self._queue: deque[str] = deque()
        self._ready = asyncio.Event()
        self._transport: asyncio.WriteTransport | None = None

    def use_transport(self, transport: asyncio.WriteTransport) -> None:
        """Write frames directly to ``transport`` (the open socket, after the handshake) from now on."""
        self._transport = transport

    def send_event(self, prefix: str, encoded: bytes | None = None) -> None:
        """Send an event envelope (from :func:`envelope_prefix`; ``encoded`` is the same prefix in UTF-8, when the
        caller shares it between connections) with this connection's next ``seq``."""
        if self.closed:
            return
        seq = self.seq
        self.seq = seq + 1
        if self._transport is not None:
            self._write((prefix.encode() if encoded is None else encoded) + b"%d}" % seq)
        else:
            self._queue.append(f"{prefix}{seq}}}")
            self._wake()

    def send_raw(self, text: str) -> None:
        """Send a message that carries no ``seq`` (a reply to a client action)."""
        if self.closed:
            return
        if self._transport is not None:
            self._write(text.encode())
        else:
            self._queue.append(text)
            self._wake()

    def close(self, code: int = 1000) -> None:
        """Ask the writer to send what is queued so far, then close the socket with ``code``."""
        if not self.closed:
            self.closed, self.close_code = True, code
            self._ready.set()

    def _write(self, payload: bytes) -> None:
        transport = self._transport
        assert transport is not None
        if transport.is_closing():
            self.close(1001)
            return
        transport.write(_frame_header(len(payload)) + payload)
        if transport.get_write_buffer_size() > SEND_BUFFER_MAX_BYTES:
            log.warning(
                "closing slow websocket connection of user %s (%d bytes unsent)", self.user_id, SEND_BUFFER_MAX_BYTES
            )
            self.close(1008)

    def _wake(self) -> None:
        if len(self._queue) > SEND_QUEUE_MAX:
            log.warning("closing slow websocket connection of user %s (%d events queued)", self.user_id, SEND_QUEUE_MAX)
            self._queue.clear()
            self.close(1008)
            return
        self._ready.set()

    async def next_batch(self) -> list[str] | None:
        """The queued messages (waiting for some), or ``None`` once the connection is closing and drained."""
        while not self._queue:
            if self.closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        batch = list(self._queue)
        self._queue.clear()
        return batch


@dataclass(slots=True)
class _Members:
    """A cached member list."""

    user_ids: frozenset[str]
    expires: float


@dataclass(frozen=True, slots=True)
class _Routed:
    """An event as the hub receives it: how to route it, and its serialised envelope prefix."""

    event: str
    broadcast: Broadcast
    prefix: str

    def wire(self, workspace: str) -> str:
        """The Redis message: a small routing header line (naming the workspace), then the envelope prefix."""
        b = self.broadcast
        header = {
            "w": workspace,
            "e": self.event,
            "c": b.channel_id,
            "t": b.team_id,
            "u": b.user_id,
            "o": sorted(b.omit_users),
        }
        return f"{dumps(header)}\n{self.prefix}"

    @classmethod
    def from_wire(cls, message: str, workspace: str) -> _Routed | None:
        """Parse :meth:`wire`'s format (only the header is decoded); ``None`` for another workspace's event."""
        line, _, prefix = message.partition("\n")
        h = json.loads(line)
        if h["w"] != workspace:
            return None
        return cls(h["e"], Broadcast(h["c"], h["t"], h["u"], frozenset(h["o"])), prefix)


@dataclass(eq=False)
class Hub:
    """The process's open connections and the event pipeline (Redis when configured, else in-process)."""

    engine: AsyncEngine
    team_name: str
    redis_url: str = ""
    _by_user: dict[str, set[Connection]] = field(default_factory=dict)
    _channel_cache: dict[str, _Members] = field(default_factory=dict)
    _team_cache: dict[str, _Members] = field(default_factory=dict)
    _generation: int = 0
    _inbox: asyncio.Queue[_Routed] | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _redis: Any = None
    _subscribed: bool = False
    # The team's id: unique to this workspace's database, it tells our events from those of another workspace
    # that shares the Redis server and the team name (pub/sub channels ignore Redis database numbers).
    _workspace: str = ""

    def __post_init__(self) -> None:
        track_commits(self.engine)
        session_cache.track_writes(self.engine, _on_commit_sessions_changed)

    @property
    def redis_channel(self) -> str:
        """The pub/sub channel shared by the workspace's replicas."""
        return f"ws:{self.team_name}:events"

    # --- lifecycle ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the dispatcher, the session sweeper and (with Redis) the subscriber, subscribed on return."""
        self._inbox = asyncio.Queue()
        self._tasks.append(asyncio.create_task(self._dispatch_loop(), name="ws-hub-dispatch"))
        self._tasks.append(asyncio.create_task(self._sweep_loop(), name="ws-hub-sessions"))
        if self.redis_url:
            import redis.asyncio as aioredis

            async with self.engine.connect() as db:
                team_id = (await db.execute(select(teams.c.id).where(teams.c.name == self.team_name))).scalar()
            self._workspace = team_id or self.team_name

            self._redis = aioredis.Redis.from_url(self.redis_url)
            subscribed = asyncio.Event()
            self._tasks.append(asyncio.create_task(self._subscribe_loop(subscribed), name="ws-hub-redis"))
            try:
                await asyncio.wait_for(subscribed.wait(), REDIS_SUBSCRIBE_TIMEOUT_SECONDS)
            except TimeoutError:
                log.warning("redis not reachable yet; events stay in this process until it is")

    async def stop(self) -> None:
        """Close every connection and stop the background tasks."""
        for conns in list(self._by_user.values()):
            for conn in list(conns):
                conn.close(1001)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    # --- connections -------------------------------------------------------------------------------------

    def register(self, conn: Connection) -> None:
        """Start delivering events to ``conn``."""
        self._by_user.setdefault(conn.user_id, set()).add(conn)

    def unregister(self, conn: Connection) -> None:
        """Stop delivering events to ``conn``."""
        conns = self._by_user.get(conn.user_id)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self._by_user[conn.user_id]

    def is_online(self, user_id: str) -> bool:
        """Whether the user has a connection open on this replica."""
        return user_id in self._by_user

    @property
    def connection_count(self) -> int:
        """Open connections on this replica."""
        return sum(len(conns) for conns in self._by_user.values())

    async def channel_members(self, channel_id: str) -> frozenset[str]:
        """The channel's member ids (cached)."""
        return await self._members(
            self._channel_cache,
            channel_id,
            select(channel_members.c.user_id).where(channel_members.c.channel_id == channel_id),
        )

    async def team_members(self, team_id: str) -> frozenset[str]:
        """The team's active member ids (cached)."""
        query = select(team_members.c.user_id).where(team_members.c.team_id == team_id, team_members.c.delete_at == 0)
        return await self._members(self._team_cache, team_id, query)

    async def _members(self, cache: dict[str, _Members], key: str, query: Any) -> frozenset[str]:
        now = time.monotonic()
        cached = cache.get(key)
        if cached is not None and cached.expires > now:
            return cached.user_ids
        generation = self._generation
        async with self.engine.connect() as db:
            user_ids = frozenset((await db.execute(query)).scalars())
        # An invalidation that arrived while we read would make this result stale: use it once, do not keep it.
        if generation == self._generation:
            cache[key] = _Members(user_ids, now + MEMBERS_TTL_SECONDS)
        return user_ids

    def _invalidate(self, event: str, broadcast: Broadcast) -> None:
        if event in _CHANNEL_MEMBERSHIP_EVENTS:
            self._generation += 1
            if broadcast.channel_id:
                self._channel_cache.pop(broadcast.channel_id, None)
            else:
                self._channel_cache.clear()
        elif event in _TEAM_MEMBERSHIP_EVENTS:
            # Leaving a team also removes its channel memberships.
            self._generation += 1
            self._team_cache.clear()
            self._channel_cache.clear()

    # --- the pipeline ------------------------------------------------------------------------------------

    async def publish(self, event: str, data: dict[str, Any], broadcast: Broadcast) -> None:
        """Serialise the event once and send it to every replica (see :func:`publish`)."""
        await self._publish(_Routed(event, broadcast, envelope_prefix(event, data, broadcast)))

    async def _publish(self, routed: _Routed) -> None:
        if self._redis is not None:
            try:
                await self._redis.publish(self.redis_channel, routed.wire(self._workspace))
            except Exception as exc:
                log.warning("redis publish failed (%s); delivering %s on this replica only", exc, routed.event)
                self._enqueue(routed)
                return
            if not self._subscribed:
                self._enqueue(routed)
            return
        self._enqueue(routed)

    def _enqueue(self, routed: _Routed) -> None:
        if self._inbox is not None:
            self._inbox.put_nowait(routed)

    async def _dispatch_loop(self) -> None:
        assert self._inbox is not None
        while True:
            routed = await self._inbox.get()
            try:
                await self._deliver(routed)
            except Exception:
                log.exception("delivering %s failed", routed.event)

    async def _deliver(self, routed: _Routed) -> None:
        event, b = routed.event, routed.broadcast
        if event == session_cache.SESSIONS_CHANGED:
            # Another replica (or this one) committed a change to sessions or users.
            session_cache.invalidate()
            return
        self._invalidate(event, b)
        if event == _DISCONNECT_USER:
            for conn in list(self._by_user.get(b.user_id, ())):
                conn.close(1000)
            return
        if not self._by_user:
            return
        targets: Iterable[str]
        if b.user_id:
            targets = (b.user_id,)
        elif b.channel_id:
            targets = _smaller(await self.channel_members(b.channel_id), self._by_user)
        elif b.team_id:
            targets = _smaller(await self.team_members(b.team_id), self._by_user)
        else:
            targets = list(self._by_user)
        by_user, omit = self._by_user, b.omit_users
        recipients = [
            conn
            for user_id in targets
            if user_id not in omit and (conns := by_user.get(user_id)) is not None
            for conn in conns
        ]
        prefix = routed.prefix
        encoded = prefix.encode()
        for start in range(0, len(recipients), DELIVERY_SLICE):
            if start:
                # Let requests in between: a post to a big channel must not stall the process for its whole fan-out.
                await asyncio.sleep(0)
            for conn in recipients[start : start + DELIVERY_SLICE]:
                conn.send_event(prefix, encoded)

    async def _subscribe_loop(self, subscribed: asyncio.Event) -> None:
        backoff = 0.2
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.redis_channel)
                self._subscribed = True
                subscribed.set()
                backoff = 0.2
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is None or message.get("type") != "message":
                        continue
                    try:
                        routed = _Routed.from_wire(message["data"].decode(), self._workspace)
                    except (ValueError, KeyError, TypeError):
                        log.warning("ignoring a malformed event on %s", self.redis_channel)
                        continue
                    if routed is not None:
                        self._enqueue(routed)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._subscribed = False
                log.warning("redis subscription lost (%s); retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                self._subscribed = False
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(SESSION_SWEEP_SECONDS)
            try:
                await self.sweep_sessions()
            except Exception as exc:
                log.warning("checking websocket sessions failed: %s", exc)

    async def sweep_sessions(self) -> None:
        """Close the connections whose session was revoked or expired, or whose user was deactivated."""
        open_sessions = {conn.session_id for conns in self._by_user.values() for conn in conns}
        if not open_sessions:
            return
        query = (
            select(sessions.c.id)
            .join(users, users.c.id == sessions.c.user_id)
            .where(sessions.c.id.in_(open_sessions), sessions.c.expires_at > now_ms(), users.c.delete_at == 0)
        )
        async with self.engine.connect() as db:
            live = set((await db.execute(query)).scalars())
        for conns in list(self._by_user.values()):
            for conn in list(conns):
                if conn.session_id not in live:
                    conn.close(1000)


def _smaller(members: frozenset[str], connected: dict[str, set[Connection]]) -> Iterable[str]:
    """The members who are connected, iterating over the smaller side."""
    if len(members) <= len(connected):
        return members
    return [user_id for user_id in connected if user_id in members]


# --- the process-wide API ------------------------------------------------------------------------------------

_hub: Hub | None = None


def set_hub(hub: Hub | None) -> None:
    """Install the process's hub (the app does this at startup)."""
    global _hub
    _hub = hub


def current_hub() -> Hub | None:
    """The process's hub, if the server is running."""
    return _hub


async def publish(event: str, data: dict[str, Any], broadcast: Broadcast) -> None:
    """Send a Mattermost WebSocket event to every connection (on every replica) that ``broadcast`` and the
    delivery rules allow. Call it after the change it announces is committed. Never raises for delivery
    problems: realtime events are best effort, clients resync over REST when they reconnect."""
    hub = _hub
    if hub is None:
        return
    try:
        await hub.publish(event, data, broadcast)
    except Exception:
        log.exception("publishing %s failed", event)


async def disconnect_user(user_id: str) -> None:
    """Close every WebSocket connection of ``user_id`` on every replica (after deactivation or revoking all of
    their sessions; single revoked sessions are also caught by the periodic session sweep)."""
    hub = _hub
    if hub is not None:
        await hub._publish(_Routed(_DISCONNECT_USER, Broadcast(user_id=user_id), ""))


async def publish_user_added(channel_id: str, team_id: str, user_id: str) -> None:
    """Mattermost's ``user_added``: to the channel's members, the new member included."""
    await publish("user_added", {"team_id": team_id, "user_id": user_id}, Broadcast(channel_id=channel_id))


async def publish_user_removed(channel_id: str, user_id: str, remover_id: str) -> None:
    """Mattermost's ``user_removed``: to the removed user, and to the members who remain."""
    await publish("user_removed", {"channel_id": channel_id, "remover_id": remover_id}, Broadcast(user_id=user_id))
    await publish("user_removed", {"user_id": user_id, "remover_id": remover_id}, Broadcast(channel_id=channel_id))


# --- events that wait for a commit ---------------------------------------------------------------------------

EventData = dict[str, Any] | Callable[[], dict[str, Any]]
"""An event's data, or a function computing it at publication (for data the route completes after the write)."""


@dataclass(slots=True)
class _Pending:
    uncommitted: list[tuple[str, EventData, Broadcast]] = field(default_factory=list)
    committed: list[tuple[str, EventData, Broadcast]] = field(default_factory=list)


# Keyed by the synchronous Connection behind an AsyncConnection: the object SQLAlchemy's commit events name.
_pending: weakref.WeakKeyDictionary[Connection_, _Pending] = weakref.WeakKeyDictionary()


def _on_commit(conn: Connection_) -> None:
    pending = _pending.get(conn)
    if pending is not None:
        pending.committed.extend(pending.uncommitted)
        pending.uncommitted.clear()


def _on_commit_sessions_changed(conn: Connection_) -> None:
    # Tell every replica to drop its session cache, once this request publishes its events.
    _pending.setdefault(conn, _Pending()).committed.append((session_cache.SESSIONS_CHANGED, {}, Broadcast()))


def _on_rollback(conn: Connection_) -> None:
    pending = _pending.get(conn)
    if pending is not None:
        pending.uncommitted.clear()


def track_commits(engine: AsyncEngine) -> None:
    """Let :func:`defer`red events follow the transactions of ``engine``'s connections: an event becomes
    publishable when its transaction commits and is dropped when it rolls back."""
    if not sa_event.contains(engine.sync_engine, "commit", _on_commit):
        sa_event.listen(engine.sync_engine, "commit", _on_commit)
        sa_event.listen(engine.sync_engine, "rollback", _on_rollback)


def _key(conn: AsyncConnection) -> Connection_:
    sync = conn.sync_connection
    assert sync is not None, "the connection is not open"
    return sync


def defer(conn: AsyncConnection, event: str, data: EventData, broadcast: Broadcast) -> None:
    """Queue an event on ``conn``'s transaction: published by :func:`flush` once that transaction has committed
    (the request's connection dependency flushes at the end of every request; routes that want the event out
    before their response call ``await flush(conn)`` after their commit)."""
    _pending.setdefault(_key(conn), _Pending()).uncommitted.append((event, data, broadcast))


def discard(conn: AsyncConnection) -> None:
    """Drop every event queued on ``conn`` (the request failed)."""
    _pending.pop(_key(conn), None)


async def flush(conn: AsyncConnection) -> None:
    """Publish, in order, the events of ``conn``'s committed transactions."""
    pending = _pending.get(_key(conn))
    if pending is None or not pending.committed:
        return
    ready, pending.committed = pending.committed, []
    for event, data, broadcast in ready:
        await publish(event, data() if callable(data) else data, broadcast)
