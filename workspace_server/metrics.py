"""Request counts and latencies in Prometheus's text format (``GET /metrics``, behind the control token), summed
over the server's worker processes: what the control plane gates a release upgrade on.

Counting costs a request a few array writes and no lock: the counters are a table of doubles in anonymous shared
memory, made before the workers are forked (so all of them map it), with a row per process that only that process
writes. A scrape, served by any worker, adds up the rows. The ping and ``/metrics`` itself are not counted, nor
WebSockets.
"""

from __future__ import annotations

import mmap
from bisect import bisect_left
from time import perf_counter
from typing import Final

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workspace_server.canopy_admin import require_control_token

BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Upper bounds of the latency histogram's buckets, in seconds (the last bucket, +Inf, is implied)."""
STATUS_CLASSES: Final = ("2xx", "3xx", "4xx", "5xx")
UNMEASURED_PATHS: Final = frozenset({"/metrics", "/api/v4/system/ping"})

# A row: requests per status class, then per latency bucket (not cumulative; +Inf last), the latencies' sum and
# the requests in flight.
FIRST_BUCKET: Final = len(STATUS_CLASSES)
SUM: Final = FIRST_BUCKET + len(BUCKETS) + 1
IN_FLIGHT: Final = SUM + 1
_ROW: Final = IN_FLIGHT + 1

router = APIRouter(dependencies=[Depends(require_control_token)])


class RequestMetrics:
    """The shared counter table of ``processes`` processes; this process counts in row 0 until :meth:`use_row`."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._memory = mmap.mmap(-1, processes * _ROW * 8)  # MAP_SHARED | MAP_ANONYMOUS: forked children share it
        self._table = memoryview(self._memory).cast("d")
        self.row = self._table[:_ROW]

    def use_row(self, index: int) -> None:
        """Count this process's requests in row ``index`` (each worker, just after the fork, its own)."""
        self.row = self._table[index * _ROW : (index + 1) * _ROW]

    def totals(self) -> list[float]:
        """Every counter summed over the processes' rows."""
        values = self._table.tolist()
        return [sum(values[column::_ROW]) for column in range(_ROW)]


def _status_column(status: int) -> int:
    return min(max(status // 100 - 2, 0), len(STATUS_CLASSES) - 1)


class MetricsMiddleware:
    """Pure ASGI middleware counting each HTTP request's status class and latency in ``metrics`` (outermost: a
    request refused by inner middleware counts too; one the app fails without answering counts as the 500 uvicorn
    sends)."""

    def __init__(self, app: ASGIApp, metrics: RequestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request, timing it."""
        if scope["type"] != "http" or scope["path"] in UNMEASURED_PATHS:
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        row = self.metrics.row
        row[IN_FLIGHT] += 1
        started = perf_counter()
        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            seconds = perf_counter() - started
            row[IN_FLIGHT] -= 1
            row[_status_column(status)] += 1
            row[FIRST_BUCKET + bisect_left(BUCKETS, seconds)] += 1
            row[SUM] += seconds


@router.get("/metrics")
async def get_metrics(request: Request) -> Response:
    """The server's request metrics (see the module docstring); 401 without the control token."""
    from workspace_server.metrics_exposition import CONTENT_TYPE, exposition  # on first scrape: idle servers skip it

    metrics: RequestMetrics = request.app.state.metrics
    return Response(exposition(metrics.totals()), media_type=CONTENT_TYPE)
