"""Tiny loopback HTTP servers for the gateway tests: a webhook receiver and a scripted Stripe (contract tests)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    """One request as it arrived."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Recorder:
    """What a server received, in order."""

    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, predicate: Callable[[Received], bool], timeout: float = 15.0) -> Received:
        """The first request matching ``predicate``, waiting for it up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for request in self.requests:
                    if predicate(request):
                        return request
            time.sleep(0.02)
        raise AssertionError(f"no matching request within {timeout:g}s; got {[r.path for r in self.requests]}")


Responder = Callable[[Received], tuple[int, bytes]]


@contextmanager
def serve(responder: Responder) -> Iterator[tuple[str, Recorder]]:
    """An HTTP server on 127.0.0.1 answering with ``responder``; yields its base URL and its recorder."""
    recorder = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            received = Received(self.command, self.path, dict(self.headers.items()), self.rfile.read(length))
            with recorder.lock:
                recorder.requests.append(received)
            status, body = responder(received)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_DELETE = _handle

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
