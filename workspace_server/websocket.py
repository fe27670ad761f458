"""Mattermost's WebSocket API (``GET /api/v4/websocket``).

Protocol, as Mattermost clients expect it:

- authentication: the session token in the upgrade request (``Authorization`` header or ``MMAUTHTOKEN``
  cookie), or the first action ``{"action": "authentication_challenge", "seq": 1, "data": {"token": ...}}``;
- once authenticated the server sends ``hello`` (``data.connection_id``, ``data.server_version``) with
  ``seq`` 0, then every event with ``seq`` one higher than the last on this connection;
- every client action with a ``seq`` gets a reply ``{"status": "OK", "seq_reply": seq[, "data": ...]}`` (or
  ``{"status": "FAIL", "seq_reply": seq, "error": {...}}``); actions: ``authentication_challenge``,
  ``user_typing``, ``ping``, ``get_statuses``, ``get_statuses_by_ids`` (and ``presence``,
  ``user_update_active_status``, ``posted_ack``, acknowledged and ignored);
- a failed ``authentication_challenge`` gets its FAIL reply and a close frame (code 1008); other actions before
  authentication get a FAIL reply; a connection still unauthenticated after 30 s is closed.

One task reads the client's actions; another writes the connection's queue (see :class:`events.Connection`),
so a slow client never delays anyone else's events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any, Final, cast

from fastapi import APIRouter, WebSocket
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from workspace_server import statuses
from workspace_server.auth import Session, request_token, session_for_token
from workspace_server.events import Broadcast, Connection, Hub, envelope_prefix, publish
from workspace_server.ids import is_valid_id, new_id, now_ms
from workspace_server.web import MATTERMOST_VERSION

router = APIRouter(prefix="/api/v4")
log = logging.getLogger(__name__)

AUTH_TIMEOUT_SECONDS: Final = 30.0
"""How long an unauthenticated connection may stay open without authenticating."""
MAX_MESSAGE_CHARS: Final = 64 * 1024
SERVER_VERSION: Final = f"{MATTERMOST_VERSION}.0.canopy.false"
CLOSE_POLICY: Final = 1008
# Client notices this server has no use for (active channel, activity, delivery receipts): answered OK.
_ACKNOWLEDGED_ACTIONS: Final = frozenset({"presence", "user_update_active_status", "posted_ack"})


def _reply(seq: int, data: dict[str, Any] | None = None) -> str:
    body: dict[str, Any] = {"status": "OK", "seq_reply": seq}
    if data is not None:
        body["data"] = data
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def _error(seq: int, error_id: str, message: str) -> str:
    body = {
        "status": "FAIL",
        "seq_reply": seq,
        "error": {"id": error_id, "message": message, "detailed_error": "", "request_id": "", "status_code": 400},
    }
    return json.dumps(body, separators=(",", ":"))


class _Socket:
    """One client's connection: its authentication state and the action handlers."""

    def __init__(self, ws: WebSocket, hub: Hub) -> None:
        self.ws = ws
        self.hub = hub
        self.conn = Connection(new_id(), "", "")
        self.session: Session | None = None

    async def authenticate(self, token: str) -> bool:
        """Look the token up; on success register with the hub and queue ``hello``."""
        async with self.hub.engine.connect() as db:
            session = await session_for_token(db, token)
        if session is None:
            return False
        self.session = session
        self.conn.user_id, self.conn.session_id = session.user_id, session.id
        hello = {"connection_id": self.conn.connection_id, "server_version": SERVER_VERSION}
        self.conn.send_event(envelope_prefix("hello", hello, Broadcast(user_id=session.user_id)))
        first = not self.hub.is_online(session.user_id)
        self.hub.register(self.conn)
        if first:
            await statuses.presence_changed(self.hub, session.user_id)
        return True

    async def read_loop(self) -> None:
        """Handle the client's actions until it disconnects or must be closed."""
        while not self.conn.closed:
            if self.session is None:
                try:
                    async with asyncio.timeout(AUTH_TIMEOUT_SECONDS):
                        message = await self.ws.receive()
                except TimeoutError:
                    self.conn.close(CLOSE_POLICY)
                    return
            else:
                message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text")
            if raw is None and message.get("bytes") is not None:
                raw = message["bytes"].decode("utf-8", "replace")
            if not raw or len(raw) > MAX_MESSAGE_CHARS:
                continue
            try:
                action = json.loads(raw)
            except ValueError:
                continue
            if isinstance(action, dict):
                await self.handle(action)

    async def handle(self, action: dict[str, Any]) -> None:
        """Answer one client action."""
        seq = action.get("seq")
        seq = seq if isinstance(seq, int) and not isinstance(seq, bool) else 0
        name = action.get("action")
        raw_data = action.get("data")
        data: dict[str, Any] = raw_data if isinstance(raw_data, dict) else {}
        if name == "authentication_challenge":
            token = data.get("token")
            if self.session is None and not (isinstance(token, str) and token and await self.authenticate(token)):
                self.conn.send_raw(
                    _error(seq, "api.web_socket_router.not_authenticated.app_error", "Invalid or expired session.")
                )
                self.conn.close(CLOSE_POLICY)
                return
            self.conn.send_raw(_reply(seq))
            return
        if self.session is None:
            # As Mattermost: refused, but the client may still authenticate (until AUTH_TIMEOUT_SECONDS).
            self.conn.send_raw(
                _error(seq, "api.web_socket_router.not_authenticated.app_error", "Not authenticated; send a token.")
            )
            return
        if name == "ping":
            pong = {"text": "pong", "version": SERVER_VERSION, "server_time": now_ms(), "node_id": ""}
            self.conn.send_raw(_reply(seq, pong))
        elif name == "user_typing":
            await self.typing(seq, data)
        elif name == "get_statuses":
            async with self.hub.engine.connect() as db:
                self.conn.send_raw(_reply(seq, await statuses.active_statuses(db)))
        elif name == "get_statuses_by_ids":
            user_ids = data.get("user_ids")
            if not isinstance(user_ids, list) or not all(isinstance(u, str) and is_valid_id(u) for u in user_ids):
                self.conn.send_raw(_error(seq, "api.websocket_handler.invalid_param.app_error", "Invalid user_ids."))
                return
            async with self.hub.engine.connect() as db:
                found = await statuses.statuses_of(db, user_ids[: statuses.IDS_PER_REQUEST_MAX])
            self.conn.send_raw(_reply(seq, {s["user_id"]: s["status"] for s in found}))
        elif name in _ACKNOWLEDGED_ACTIONS:
            self.conn.send_raw(_reply(seq))
        else:
            self.conn.send_raw(_error(seq, "api.web_socket_router.bad_action.app_error", "Unknown action."))

    async def typing(self, seq: int, data: dict[str, Any]) -> None:
        """``user_typing``: tell the channel's other members (only a member may say they type in a channel)."""
        assert self.session is not None
        channel_id, parent_id = data.get("channel_id"), data.get("parent_id", "")
        if not isinstance(channel_id, str) or not is_valid_id(channel_id):
            self.conn.send_raw(_error(seq, "api.websocket_handler.invalid_param.app_error", "Invalid channel_id."))
            return
        if not isinstance(parent_id, str) or (parent_id and not is_valid_id(parent_id)):
            self.conn.send_raw(_error(seq, "api.websocket_handler.invalid_param.app_error", "Invalid parent_id."))
            return
        user_id = self.session.user_id
        if user_id not in await self.hub.channel_members(channel_id):
            self.conn.send_raw(_error(seq, "api.context.permissions.app_error", "Not a member of the channel."))
            return
        broadcast = Broadcast(channel_id=channel_id, omit_users=frozenset({user_id}))
        await publish("typing", {"parent_id": parent_id, "user_id": user_id}, broadcast)
        self.conn.send_raw(_reply(seq))

    async def write_loop(self) -> None:
        """Send the connection's queue in order; close the socket once the connection is closed."""
        send = self.ws.send
        while (batch := await self.conn.next_batch()) is not None:
            for text in batch:
                await send({"type": "websocket.send", "text": text})
        with contextlib.suppress(Exception):
            await self.ws.close(self.conn.close_code)


_RAW_SEND_KEY: Final = "canopy.raw_send"


class RawSendMiddleware:
    """Keeps the server's own ASGI ``send`` of WebSocket connections in the scope, before the framework wraps it,
    so that the endpoint can find the socket's transport (see :func:`_direct_transport`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the connection on, remembering ``send`` for WebSockets."""
        if scope["type"] == "websocket":
            scope[_RAW_SEND_KEY] = send
        await self.app(scope, receive, send)


def _direct_transport(ws: WebSocket) -> asyncio.WriteTransport | None:
    """The socket's transport when uvicorn's websockets-sansio protocol serves it: that protocol writes each
    message as whole frames with one ``transport.write``, so ours can go between them. ``None`` elsewhere (the
    connection then sends through ASGI)."""
    protocol = getattr(ws.scope.get(_RAW_SEND_KEY), "__self__", None)
    if not isinstance(protocol, WebSocketsSansIOProtocol):
        return None
    transport = getattr(protocol, "transport", None)
    # uvloop's transports are not asyncio.WriteTransport subclasses: check for what we call.
    if not all(hasattr(transport, name) for name in ("write", "is_closing", "get_write_buffer_size")):
        return None
    return cast(asyncio.WriteTransport, transport)


@router.websocket("/websocket")
async def websocket_endpoint(ws: WebSocket) -> None:
    """Mattermost's WebSocket: events out, actions in."""
    hub: Hub = ws.app.state.hub
    await ws.accept()
    socket = _Socket(ws, hub)
    transport = _direct_transport(ws)
    if transport is not None:
        socket.conn.use_transport(transport)
    found = request_token(ws.headers, ws.cookies)
    if found is not None:
        await socket.authenticate(found[0])
    reader = asyncio.create_task(socket.read_loop(), name="ws-read")
    writer = asyncio.create_task(socket.write_loop(), name="ws-write")
    try:
        done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
        if reader in done:
            # The client left, or the connection must close: let the writer flush what is queued and close.
            socket.conn.close(socket.conn.close_code)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer, timeout=5)
    finally:
        socket.conn.close()
        hub.unregister(socket.conn)
        if socket.session is not None and not hub.is_online(socket.session.user_id):
            await statuses.presence_changed(hub, socket.session.user_id)
        for task in (reader, writer):
            task.cancel()
        for task in (reader, writer):
            with contextlib.suppress(BaseException):
                await task
