"""Routes workspace addresses to the workspaces' local servers (embedded default).

Two forms reach a workspace:

- ``/w/<slug>/...`` on the control plane's own host: every client reaches it (no name to resolve). The prefix is
  stripped and sent as ``X-Forwarded-Prefix``, which the workspace server scopes its cookies to.
- ``<slug>.<base domain>``: browsers resolve ``*.localhost`` themselves; other clients on a stock system do not.

HTTP requests are streamed through httpx; WebSocket sessions are relayed frame by frame. The control plane's own
cookies (``canopy_*``) are never forwarded to a workspace server, nor accepted from one, and path-form responses
are sandboxed (``Content-Security-Policy: sandbox``): they share the control plane's origin.

A request (or WebSocket) for a hibernated workspace wakes it and is held until its server serves, then forwarded
(:mod:`control_plane.workspaces.waking`: one wake however many requests wait); only a wake that takes longer than
``wake_timeout_seconds`` answers ``503`` with ``Retry-After``. A request whose server went away under it (hibernated
between the lookup and the connection) is looked up again and, asleep, waits for the wake in the same way. A
workspace being restored in place answers ``503`` with ``Retry-After`` at once (:func:`waking.being_restored`), and
so does an address in the downtime window of its move to Enterprise (:func:`moves.service.being_moved`).
In production an ingress does this job and the middleware is not installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx
import websockets
from sqlalchemy import select
from starlette.types import ASGIApp, Receive, Scope, Send

from control_plane.core.db import new_session
from control_plane.core.problems import PROBLEM_MEDIA_TYPE, NotFound, Problem
from control_plane.moves import repository as moves
from control_plane.moves.service import being_moved
from control_plane.workspaces.lifecycle import RUNNING_STATES, Lifecycle
from control_plane.workspaces.models import Workspace
from control_plane.workspaces.slugs import check_format
from control_plane.workspaces.waking import WAKEABLE_STATES, WakeFailed, Waker, being_restored, still_waking

log = logging.getLogger(__name__)
HOP_BY_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"upgrade", b"te", b"trailer", b"host"}
CACHE_SECONDS = 1.0  # how long a known port is trusted (below the local runtime's SWITCH_GRACE_SECONDS)
MISS_CACHE_SECONDS = 0.2  # short, so a workspace is reachable as soon as it is provisioned
PATH_PREFIX = b"/w/"
PREFIX_HEADER = b"x-forwarded-prefix"
# Percent-encoded slash, backslash, dot and NUL, and a raw backslash: never needed by the Mattermost API.
_SMUGGLING = re.compile(rb"%2f|%5c|%2e|%00|\\", re.IGNORECASE)
UNANSWERED = Problem(502, "workspace-unavailable", "Bad gateway", "The workspace server is not answering")
ASLEEP = 0  # the port of a workspace whose server is not up (hibernated, or starting again)
RESTORING = -1  # the port of a workspace being restored in place (no server, none to wait for)
MOVING = -2  # the port of an address whose workspace is being moved to Enterprise, in its downtime window
WEBSOCKET_POLICY_VIOLATION = 1008
WEBSOCKET_TRY_AGAIN_LATER = 1013
_CONTROL_PLANE_COOKIE = re.compile(r"^\s*(__Host-|__Secure-)?canopy_", re.IGNORECASE)


@dataclass(frozen=True)
class Route:
    """Where a request goes: the workspace, the path its server sees, the public prefix ("" for the host form)."""

    slug: str
    path: bytes
    prefix: str


class Refused(Exception):
    """A ``/w/...`` path that names no workspace route (bad slug, traversal, encoded separators)."""


def path_route(raw_path: bytes) -> Route | None:
    """The route of a ``/w/<slug>[/rest]`` path; None for other paths. Raises :class:`Refused` for odd ones."""
    if raw_path != PATH_PREFIX[:-1] and not raw_path.startswith(PATH_PREFIX):
        return None
    slug_bytes, slash, rest = raw_path[len(PATH_PREFIX) :].partition(b"/")
    slug = slug_bytes.decode("latin-1")
    verdict = check_format(slug)
    if not verdict.valid or verdict.slug != slug:
        raise Refused(slug)
    path = slash + rest or b"/"
    if _SMUGGLING.search(path) or any(segment in (b".", b"..") for segment in path.split(b"/")):
        raise Refused(slug)
    return Route(slug, path, f"/w/{slug}")


def forwarded_headers(headers: list[tuple[bytes, bytes]], prefix: str) -> list[tuple[bytes, bytes]]:
    """The request headers a workspace server gets: no hop-by-hop ones, no client-set prefix, no control-plane
    cookie; ``X-Forwarded-Prefix`` for the path form."""
    out = []
    for key, value in headers:
        name = key.lower()
        if name in HOP_BY_HOP or name == PREFIX_HEADER:
            continue
        if name == b"cookie":
            value = _without_control_plane_cookies(value)
            if not value:
                continue
        out.append((key, value))
    return out + ([(PREFIX_HEADER, prefix.encode())] if prefix else [])


def _without_control_plane_cookies(header: bytes) -> bytes:
    pairs = header.decode("latin-1").split(";")
    return ";".join(p for p in pairs if p.strip() and not _CONTROL_PLANE_COOKIE.match(p)).strip().encode("latin-1")


def returned_headers(headers: list[tuple[bytes, bytes]], prefix: str, upstream: str) -> list[tuple[bytes, bytes]]:
    """The response headers a client gets: no hop-by-hop ones, no cookie in the control plane's names, redirects
    to the workspace server's own origin (``upstream``) or path made public; path-form responses are sandboxed, as
    they share the control plane's origin."""
    out = []
    for key, value in headers:
        name = key.lower()
        if name in HOP_BY_HOP or (name == b"set-cookie" and _CONTROL_PLANE_COOKIE.match(value.decode("latin-1"))):
            continue
        out.append((key, _public_location(value.decode("latin-1"), prefix, upstream) if name == b"location" else value))
    return out + ([(b"content-security-policy", b"sandbox")] if prefix else [])


def _public_location(location: str, prefix: str, upstream: str) -> bytes:
    """``location`` as the client must follow it: the upstream origin dropped, absolute paths under ``prefix``."""
    if location == upstream or location.startswith(upstream + "/"):
        location = location[len(upstream) :] or "/"
    if location.startswith("/") and not location.startswith("//"):
        location = prefix + location
    return location.encode("latin-1")


class WorkspaceProxy:
    """ASGI middleware: requests for a workspace address go to its server, the rest to ``app``."""

    def __init__(self, app: ASGIApp, base_domain: str, waker: Waker) -> None:
        self.app = app
        self.suffix = "." + base_domain
        self.waker = waker
        self.ports: dict[str, tuple[float, int | None]] = {}
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=5.0))

    def _route(self, scope: Scope) -> Route | None:
        """The workspace route of a request (host form first), None for the control plane's own."""
        raw: bytes = dict(scope.get("headers", [])).get(b"host", b"")
        host = raw.decode("latin-1").split(":")[0].lower()
        if host.endswith(self.suffix) and host != self.suffix[1:]:
            return Route(host[: -len(self.suffix)], scope["raw_path"], "")
        return path_route(scope["raw_path"])

    def _lookup_port(self, slug: str) -> int | None:
        """The port of the slug's server, :data:`ASLEEP` when it has none up but a request may wait for one,
        :data:`RESTORING` while it is restored in place, :data:`MOVING` while none serves in the window of a move to
        Enterprise, None when no workspace there can serve."""
        states = RUNNING_STATES | WAKEABLE_STATES | {Lifecycle.restoring}
        with new_session() as session:
            row = session.execute(
                select(Workspace.lifecycle_state, Workspace.outputs).where(
                    Workspace.slug == slug, Workspace.lifecycle_state.in_(list(states))
                )
            ).one_or_none()
            port = self._port_of(row)
            if port is None and moves.moving_at(session, slug):
                return MOVING
        return port

    @staticmethod
    def _port_of(row: Any) -> int | None:
        """What a workspace row (lifecycle state and outputs; None: no row) answers of :meth:`_lookup_port`."""
        if row is None:
            return None
        if row.lifecycle_state == Lifecycle.restoring:
            return RESTORING
        port = (row.outputs or {}).get("port")
        if port and row.lifecycle_state in RUNNING_STATES:
            return int(port)
        return ASLEEP if row.lifecycle_state in WAKEABLE_STATES else None

    async def _port(self, slug: str, *, fresh: bool = False) -> int | None:
        cached = self.ports.get(slug)
        if cached and not fresh and time.monotonic() - cached[0] < (CACHE_SECONDS if cached[1] else MISS_CACHE_SECONDS):
            return cached[1]
        port = await asyncio.to_thread(self._lookup_port, slug)
        if port in (ASLEEP, RESTORING, MOVING):
            self.ports.pop(slug, None)
        else:
            self.ports[slug] = (time.monotonic(), port)
        return port

    async def _serving_port(self, slug: str, *, fresh: bool = False) -> int | Problem:
        """The port of the slug's server, waking the workspace and waiting for it when it sleeps; or the problem to
        answer (404: nothing there; 503 with ``Retry-After``: not awake within the wake timeout)."""
        port = await self._port(slug, fresh=fresh)
        if port is None:
            return _nothing_there()
        if port == RESTORING:
            return being_restored()
        if port == MOVING:
            return being_moved()
        if port != ASLEEP:
            return port
        try:
            woken = await self.waker.wake(slug)
        except WakeFailed:
            return still_waking()
        if woken is None or woken.port is None:
            return _nothing_there()
        self.ports[slug] = (time.monotonic(), woken.port)
        return woken.port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        try:
            route = self._route(scope)
        except Refused:
            await _refuse(scope, receive, send, _nothing_there())
            return
        if route is None:
            await self.app(scope, receive, send)
            return
        port = await self._serving_port(route.slug)
        if isinstance(port, Problem):
            await _refuse(scope, receive, send, port)
        elif scope["type"] == "http":
            await self._http(scope, receive, send, port, route)
        else:
            await self._websocket(scope, receive, send, port, route)

    async def _http(self, scope: Scope, receive: Receive, send: Send, port: int, route: Route) -> None:
        started = False

        async def body() -> Any:
            nonlocal started
            started = True
            while True:
                message = await receive()
                yield message.get("body", b"")
                if not message.get("more_body"):
                    break

        headers = forwarded_headers(scope["headers"], route.prefix)
        retried = False
        while True:
            upstream = f"http://127.0.0.1:{port}"
            url = httpx.URL(upstream + route.path.decode("latin-1"))
            if scope.get("query_string"):
                url = url.copy_with(query=scope["query_string"])
            request = self.client.build_request(scope["method"], url, headers=headers, content=body())
            try:
                response = await self.client.send(request, stream=True)
                break
            except httpx.ConnectError:
                # The server went away before it read anything (hibernated since the lookup?): look again, once.
                log.info("workspace %s: no server at port %d, looking again", route.slug, port)
                again = UNANSWERED if started or retried else await self._serving_port(route.slug, fresh=True)
                if isinstance(again, Problem):
                    await _problem(scope, send, again)
                    return
                port, retried = again, True
            except httpx.HTTPError:
                await _problem(scope, send, UNANSWERED)
                return
        try:
            out = returned_headers(response.headers.raw, route.prefix, upstream)
            await send({"type": "http.response.start", "status": response.status_code, "headers": out})
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()

    async def _websocket(self, scope: Scope, receive: Receive, send: Send, port: int, route: Route) -> None:
        await receive()  # websocket.connect
        path = route.path.decode("latin-1")
        if scope.get("query_string"):
            path += "?" + scope["query_string"].decode("latin-1")
        passthrough = {b"cookie", b"authorization", b"origin", b"user-agent", PREFIX_HEADER}
        forwarded = forwarded_headers(scope["headers"], route.prefix)
        headers = [(k.decode(), v.decode("latin-1")) for k, v in forwarded if k.lower() in passthrough]
        retried = False
        while True:
            try:
                upstream = await websockets.connect(f"ws://127.0.0.1:{port}{path}", additional_headers=headers)
                break
            except ConnectionRefusedError:
                # The server went away (hibernated since the lookup?): look again, once.
                log.info("workspace %s: no server at port %d, looking again", route.slug, port)
                again = UNANSWERED if retried else await self._serving_port(route.slug, fresh=True)
                if isinstance(again, Problem):
                    await send({"type": "websocket.close", "code": _close_code(again)})
                    return
                port, retried = again, True
            except (OSError, websockets.WebSocketException) as exc:
                log.warning("workspace %s: WebSocket not relayed: %s: %s", route.slug, type(exc).__name__, exc)
                await send({"type": "websocket.close", "code": 1011})
                return
        await send({"type": "websocket.accept"})
        await _relay(upstream, receive, send)


async def _relay(upstream: Any, receive: Receive, send: Send) -> None:
    async def client_to_upstream() -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await upstream.send(message.get("text") if message.get("text") is not None else message.get("bytes"))

    async def upstream_to_client() -> None:
        async for data in upstream:
            key = "text" if isinstance(data, str) else "bytes"
            await send({"type": "websocket.send", key: data})
        await send({"type": "websocket.close", "code": _relayed_close_code(upstream.close_code)})

    tasks = [asyncio.create_task(client_to_upstream()), asyncio.create_task(upstream_to_client())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await upstream.close()


def _relayed_close_code(code: int | None) -> int:
    """The close code a client gets when its server closed the WebSocket: the server's own (1001 when it stops, so
    the client reconnects), 1000 when it sent none that may be sent."""
    return 1000 if code is None or code in (1005, 1006, 1015) else code


async def _problem(scope: Scope, send: Send, problem: Problem) -> None:
    body = json.dumps(problem.body(scope["raw_path"].decode("latin-1"))).encode()
    headers = [(b"content-type", PROBLEM_MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode())]
    headers += [(name.lower().encode(), value.encode()) for name, value in problem.headers.items()]
    await send({"type": "http.response.start", "status": problem.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _close_code(problem: Problem) -> int:
    """How a WebSocket is closed for ``problem``: policy violation for a 404, try again later otherwise."""
    return WEBSOCKET_POLICY_VIOLATION if problem.status == 404 else WEBSOCKET_TRY_AGAIN_LATER


async def _refuse(scope: Scope, receive: Receive, send: Send, problem: Problem) -> None:
    """Answer ``problem`` (HTTP), or close the WebSocket (:func:`_close_code`)."""
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.close", "code": _close_code(problem)})
    else:
        await _problem(scope, send, problem)


def _nothing_there() -> Problem:
    """The 404 of an address that reaches no workspace (naming nothing about other workspaces)."""
    return NotFound("A running workspace at this address")
