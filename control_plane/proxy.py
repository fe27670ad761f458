"""Routes ``<slug>.<base domain>`` to that workspace's local server (embedded default).

HTTP requests are streamed through httpx; WebSocket sessions are relayed frame by frame.
In production an ingress does this job and the middleware is not installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import httpx
import websockets
from sqlalchemy import select
from starlette.types import ASGIApp, Receive, Scope, Send

from control_plane.core.db import new_session
from control_plane.workspaces.lifecycle import RUNNING_STATES
from control_plane.workspaces.models import Workspace

HOP_BY_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"upgrade", b"te", b"trailer", b"host"}
CACHE_SECONDS = 2.0  # how long a known port is trusted
MISS_CACHE_SECONDS = 0.2  # short, so a workspace is reachable as soon as it is provisioned


class WorkspaceProxy:
    """ASGI middleware: requests for a workspace host go to its server, the rest to ``app``."""

    def __init__(self, app: ASGIApp, base_domain: str) -> None:
        self.app = app
        self.suffix = "." + base_domain
        self.ports: dict[str, tuple[float, int | None]] = {}
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=5.0))

    def _slug(self, scope: Scope) -> str | None:
        raw: bytes = dict(scope.get("headers", [])).get(b"host", b"")
        host = raw.decode("latin-1").split(":")[0].lower()
        if host.endswith(self.suffix) and host != self.suffix[1:]:
            return host[: -len(self.suffix)]
        return None

    def _lookup_port(self, slug: str) -> int | None:
        with new_session() as session:
            row = session.execute(
                select(Workspace.outputs).where(
                    Workspace.slug == slug, Workspace.lifecycle_state.in_(list(RUNNING_STATES))
                )
            ).one_or_none()
        port = row[0].get("port") if row else None
        return int(port) if port else None

    async def _port(self, slug: str) -> int | None:
        cached = self.ports.get(slug)
        if cached and time.monotonic() - cached[0] < (CACHE_SECONDS if cached[1] else MISS_CACHE_SECONDS):
            return cached[1]
        port = await asyncio.to_thread(self._lookup_port, slug)
        self.ports[slug] = (time.monotonic(), port)
        return port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        slug = self._slug(scope) if scope["type"] in ("http", "websocket") else None
        if slug is None:
            await self.app(scope, receive, send)
            return
        port = await self._port(slug)
        if port is None:
            await _not_found(scope, receive, send, slug)
        elif scope["type"] == "http":
            await self._http(scope, receive, send, port)
        else:
            await self._websocket(scope, receive, send, port)

    async def _http(self, scope: Scope, receive: Receive, send: Send, port: int) -> None:
        async def body() -> Any:
            while True:
                message = await receive()
                yield message.get("body", b"")
                if not message.get("more_body"):
                    break

        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in HOP_BY_HOP]
        url = httpx.URL(f"http://127.0.0.1:{port}{scope['raw_path'].decode('latin-1')}")
        if scope.get("query_string"):
            url = url.copy_with(query=scope["query_string"])
        request = self.client.build_request(scope["method"], url, headers=headers, content=body())
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError:
            await _plain(send, 502, b"The workspace server is not answering")
            return
        try:
            out = [(k, v) for k, v in response.headers.raw if k.lower() not in HOP_BY_HOP]
            await send({"type": "http.response.start", "status": response.status_code, "headers": out})
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()

    async def _websocket(self, scope: Scope, receive: Receive, send: Send, port: int) -> None:
        await receive()  # websocket.connect
        path = scope["raw_path"].decode("latin-1")
        if scope.get("query_string"):
            path += "?" + scope["query_string"].decode("latin-1")
        passthrough = {b"cookie", b"authorization", b"origin", b"user-agent"}
        headers = [(k.decode(), v.decode()) for k, v in scope["headers"] if k.lower() in passthrough]
        try:
            upstream = await websockets.connect(f"ws://127.0.0.1:{port}{path}", additional_headers=headers)
        except (OSError, websockets.WebSocketException):
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
        await send({"type": "websocket.close", "code": 1000})

    tasks = [asyncio.create_task(client_to_upstream()), asyncio.create_task(upstream_to_client())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await upstream.close()


async def _plain(send: Send, status: int, text: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": text})


async def _not_found(scope: Scope, receive: Receive, send: Send, slug: str) -> None:
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.close", "code": 1008})
        return
    await _plain(send, 404, f"No running workspace is called {slug}".encode())
