"""One bound on the size of a request body, for every control-plane route (proxied workspace traffic excepted:
the proxy sits outside this middleware). A larger body, declared or streamed, is a 413 problem and nothing reads it."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from control_plane.core.problems import PROBLEM_MEDIA_TYPE, TYPE_BASE

MAX_BODY_BYTES = 1024 * 1024


def _problem(path: str) -> bytes:
    return json.dumps(
        {
            "type": TYPE_BASE + "payload-too-large",
            "title": "Payload too large",
            "status": 413,
            "detail": f"A request body is at most {MAX_BODY_BYTES} bytes",
            "instance": path,
        }
    ).encode()


class BodyLimitMiddleware:
    """Pure ASGI middleware: 413 for a body past :data:`MAX_BODY_BYTES`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            await _send_413(scope, send)
            return
        received = 0
        exceeded = started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_BODY_BYTES:
                    exceeded = True
                    return {"type": "http.disconnect"}  # the app stops reading; the 413 is ours
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if exceeded and message["type"].startswith("http.response"):
                return  # whatever the app answers to a cut-off body, the client gets the 413
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await _send_413(scope, send)


async def _send_413(scope: Scope, send: Send) -> None:
    body = _problem(scope.get("path", ""))
    headers = [(b"content-type", PROBLEM_MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
