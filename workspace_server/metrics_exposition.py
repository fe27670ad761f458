"""The request metrics' totals (:meth:`metrics.RequestMetrics.totals`) in Prometheus's text format, with the
release this server runs. Imported on the first scrape only: prometheus_client costs an idle server memory."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from workspace_server.metrics import BUCKETS, FIRST_BUCKET, IN_FLIGHT, STATUS_CLASSES, SUM
from workspace_server.release import RELEASE_VERSION

CONTENT_TYPE: Final = CONTENT_TYPE_PLAIN_0_0_4  # what generate_latest writes; prometheus_client serves it so


class _Totals(Collector):
    """The metric families of one set of totals."""

    def __init__(self, totals: Sequence[float]) -> None:
        self.totals = totals

    def collect(self) -> Iterable[Metric]:
        """Requests by status class, the latency histogram, requests in flight, the release."""
        totals = self.totals
        requests = CounterMetricFamily(
            "canopy_ws_http_requests", "HTTP requests answered, by status class.", labels=["status_class"]
        )
        for index, status_class in enumerate(STATUS_CLASSES):
            requests.add_metric([status_class], totals[index])
        yield requests
        bounds = [*map(floatToGoString, BUCKETS), "+Inf"]
        cumulative, buckets = 0.0, []
        for bound, count in zip(bounds, totals[FIRST_BUCKET:SUM], strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        yield HistogramMetricFamily(
            "canopy_ws_http_request_duration_seconds",
            "Time from a request's arrival to the end of its response.",
            buckets=buckets,
            sum_value=totals[SUM],
        )
        yield GaugeMetricFamily("canopy_ws_http_requests_in_flight", "HTTP requests being served.", totals[IN_FLIGHT])
        yield InfoMetricFamily("canopy_ws_release", "This server's Canopy release.", value={"version": RELEASE_VERSION})


def exposition(totals: Sequence[float]) -> bytes:
    """``totals`` as a Prometheus scrape answer."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Totals(totals))
    return generate_latest(registry)
