"""``/metrics`` series of the whole fleet's work, read at each scrape from where every process leaves them: the
reconcile queue (procrastinate's jobs table), the workers' counters and the AWS call budget (Redis)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import redis
from procrastinate.exceptions import ConnectorException
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from psycopg import Error as PsycopgError

from control_plane.core import fleet_counters
from control_plane.core.settings import get_settings
from control_plane.drift.detection import DETECTIONS, DRIFT_FOUND, PROBE_FAILED
from control_plane.kube.eks import KUBE_CALLS
from control_plane.providers.aws.budget import CALLS, THROTTLED, WAITED, CallBudget
from control_plane.reconciler.queue import RECONCILES, queue_figures
from control_plane.rollouts.engine import OUTCOMES, PAUSES

log = logging.getLogger(__name__)


class QueueCollector(Collector):
    """The reconcile queue's depth and the age of its oldest due job (procrastinate's jobs table)."""

    def collect(self) -> Iterator[Metric]:
        try:
            figures = queue_figures()
        except (ConnectorException, PsycopgError) as e:
            log.warning("metrics: reconcile queue unavailable: %s", type(e).__name__)
            return
        depth = GaugeMetricFamily(
            "canopy_reconcile_queue_depth",
            "Reconcile jobs waiting (due now, or scheduled later) or running",
            labels=["state"],
        )
        for state in ("due", "scheduled", "running"):
            depth.add_metric([state], figures[state])
        yield depth
        yield GaugeMetricFamily(
            "canopy_reconcile_queue_oldest_due_seconds",
            "How long the oldest due reconcile job has waited for a worker",
            value=figures["oldest_due_seconds"],
        )


class CountersCollector(Collector):
    """Reconciles by cause, AWS calls, throttling answers and budget waits by cell and service, the budget's use
    (calls in the last whole second over the rate), Kubernetes requests and drift found, from the counters in
    Redis."""

    def collect(self) -> Iterator[Metric]:
        settings = get_settings()
        budget = CallBudget.from_settings(settings)
        try:
            counters = fleet_counters.read()
            used = self._used(budget, [labels for (name, *labels) in counters if name == CALLS])
        except redis.RedisError as e:
            log.warning("metrics: counters unavailable: %s", type(e).__name__)
            return
        families = {
            RECONCILES: CounterMetricFamily(
                "canopy_reconciles", "Reconciles run, by why they were asked for", labels=["cause"]
            ),
            CALLS: CounterMetricFamily(
                "canopy_aws_calls", "AWS API calls sent (retries included)", labels=["cell", "service"]
            ),
            THROTTLED: CounterMetricFamily(
                "canopy_aws_throttled",
                "AWS answers that were throttling errors (retried with backoff)",
                labels=["cell", "service"],
            ),
            WAITED: CounterMetricFamily(
                "canopy_aws_budget_wait_seconds", "Time calls waited for the call budget", labels=["cell", "service"]
            ),
            KUBE_CALLS: CounterMetricFamily(
                "canopy_kube_calls", "Kubernetes API requests sent, by cluster and verb", labels=["cluster", "verb"]
            ),
            DRIFT_FOUND: CounterMetricFamily(
                "canopy_drift_found", "Workspaces found drifted (and reconciled), by source", labels=["source"]
            ),
            DETECTIONS: CounterMetricFamily("canopy_drift_detections", "Drift detections run over the fleet"),
            PROBE_FAILED: CounterMetricFamily(
                "canopy_drift_probe_failures", "Drift probe runs that failed, by probe", labels=["probe"]
            ),
            PAUSES: CounterMetricFamily(
                "canopy_rollout_pauses", "Rollouts that paused themselves, by cause", labels=["cause"]
            ),
            OUTCOMES: CounterMetricFamily(
                "canopy_rollout_upgrades",
                "Rollout targets finished, by release and outcome (succeeded, rolled_back, failed)",
                labels=["release", "outcome"],
            ),
        }
        for (name, *labels), value in sorted(counters.items()):
            if name in families:
                families[name].add_metric(labels, value)
        yield from families.values()
        ratio = GaugeMetricFamily(
            "canopy_aws_budget_used_ratio",
            "Calls in the last whole second over the budget's rate, by cell and service (1 = the budget is full)",
            labels=["cell", "service"],
        )
        for (cell, service), calls in used.items():
            ratio.add_metric([cell, service], calls / budget.rate(service))
        yield ratio
        rate = GaugeMetricFamily("canopy_aws_budget_rate", "AWS calls per second allowed per cell", labels=["service"])
        for service in sorted({*budget.rates, *(service for _, service in used)}):
            rate.add_metric([service], budget.rate(service))
        yield rate

    @staticmethod
    def _used(budget: CallBudget, pairs: list[list[str]]) -> dict[tuple[str, str], float]:
        if not budget.url or not pairs:
            return {}
        connection = fleet_counters.connection(budget.url)
        seconds, _ = connection.time()
        last = int(seconds) - 1 if seconds else int(time.time()) - 1
        counts = connection.mget([budget.used_key(cell, service, last) for cell, service in pairs])
        return {(cell, service): float(count or 0) for (cell, service), count in zip(pairs, counts, strict=True)}
