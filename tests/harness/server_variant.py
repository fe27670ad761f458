"""Run this checkout's workspace server as another release: ``python -m tests.harness.server_variant --version V
[--fail-every N]``.

It stands in for a workspace-server image of another version on the test cluster (process mode): the server
reports ``V`` as its release (ping, ``/metrics``). With ``--fail-every N`` it is a bad release that runs and
answers but fails one API request in ``N`` with a 500 (never the ping, so it becomes ready and serves) — inside
the server's request metrics, which count those failures as a real regression would be counted.
"""

from __future__ import annotations

import argparse
import itertools
import json
import runpy

from starlette.types import ASGIApp, Receive, Scope, Send

import workspace_server.release as release

PING = "/api/v4/system/ping"


def failing(app: ASGIApp, every: int) -> ASGIApp:
    """``app`` answering 500 to every ``every``-th API request other than the ping."""
    counter = itertools.count(1)
    body = json.dumps({"id": "canopy.test.fault", "message": "injected fault", "status_code": 500}).encode()

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path.startswith("/api/v4/") and path != PING and next(counter) % every == 0:
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 500, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)

    return serve


def install_fault(every: int) -> None:
    """Put the fault inside the server's request metrics (so its 500s are counted)."""
    from workspace_server import metrics

    original = metrics.MetricsMiddleware.__init__

    def init(self: metrics.MetricsMiddleware, app: ASGIApp, request_metrics: metrics.RequestMetrics) -> None:
        original(self, failing(app, every), request_metrics)

    metrics.MetricsMiddleware.__init__ = init  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--version", required=True)
    parser.add_argument("--fail-every", type=int, default=0)
    args = parser.parse_args()
    release.RELEASE_VERSION = args.version
    if args.fail_every:
        install_fault(args.fail_every)
    runpy.run_module("workspace_server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
