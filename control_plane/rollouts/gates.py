"""Health gates of one upgraded workspace, read from its server at its public URL.

- **Serving the release**: ``/api/v4/system/ping`` answers 200 with ``CanopyRelease`` = the target (the
  reconciler has also seen the rollout complete: see :func:`control_plane.rollouts.engine`).
- **Error rate and latency** through the soak: the server's ``/metrics`` (Prometheus text, behind its control
  token) sampled when the soak begins and at each check; the 5xx share and the p99 of the requests served in
  between must stay within the plan's limits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from control_plane.providers.workspace_client import observed_from_ping, shared_client
from control_plane.rollouts.schemas import Plan

REQUESTS = "canopy_ws_http_requests"
DURATION = "canopy_ws_http_request_duration_seconds"
TIMEOUT_SECONDS = 5.0


class GateUnreachable(Exception):
    """The server did not answer a gate's request (the check is repeated until the upgrade deadline)."""


@dataclass(frozen=True)
class Sample:
    """The server's request counters at one moment: per status class, and the latency histogram's buckets."""

    by_class: dict[str, float] = field(default_factory=dict)
    buckets: dict[float, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """For the target's ``baseline`` column."""
        return {"by_class": self.by_class, "buckets": {repr(k): v for k, v in self.buckets.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Sample:
        """Back from :meth:`as_json`."""
        return cls(dict(data["by_class"]), {float(k): float(v) for k, v in data["buckets"].items()})


def serving_release(base_url: str) -> str | None:
    """The release the server at ``base_url`` reports in its ping (None: not answering 200)."""
    return observed_from_ping(base_url).release


def sample(base_url: str, control_token: str) -> Sample:
    """The server's counters now (raises :class:`GateUnreachable` when it cannot be read)."""
    try:
        response = shared_client().get(
            f"{base_url}/metrics", headers={"Authorization": f"Bearer {control_token}"}, timeout=TIMEOUT_SECONDS
        )
    except httpx.HTTPError as exc:
        raise GateUnreachable(f"metrics unreachable: {type(exc).__name__}") from None
    if response.status_code != 200:
        raise GateUnreachable(f"metrics answered HTTP {response.status_code}")
    return parse(response.text)


def parse(text: str) -> Sample:
    """The request counters of a Prometheus text exposition."""
    by_class: dict[str, float] = {}
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == f"{REQUESTS}_total":
                key = s.labels.get("status_class", "")
                by_class[key] = by_class.get(key, 0.0) + s.value
            elif s.name == f"{DURATION}_bucket":
                bound = float(s.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + s.value
    return Sample(by_class, buckets)


def p99(buckets: dict[float, float]) -> float:
    """The upper bound of the bucket holding the 99th percentile (0 without requests)."""
    ordered = sorted(buckets.items())
    if not ordered or ordered[-1][1] <= 0:
        return 0.0
    wanted = 0.99 * ordered[-1][1]
    return next(bound for bound, count in ordered if count >= wanted)


def judge(baseline: Sample, now: Sample, plan: Plan) -> str | None:
    """Why the requests served since ``baseline`` break the plan's limits (None: within them)."""
    served = {k: v - baseline.by_class.get(k, 0.0) for k, v in now.by_class.items()}
    total = sum(served.values())
    if total <= 0:
        return None
    errors = served.get("5xx", 0.0)
    if errors / total > plan.max_error_rate:
        return (
            f"error rate {errors / total:.1%} over the limit of {plan.max_error_rate:.1%} "
            f"({errors:g} of {total:g} requests failed)"
        )
    latency = p99({k: v - baseline.buckets.get(k, 0.0) for k, v in now.buckets.items()})
    if latency > plan.max_p99_seconds and not math.isinf(latency):
        return f"p99 latency {latency:g} s over the limit of {plan.max_p99_seconds:g} s"
    if math.isinf(latency) and plan.max_p99_seconds < math.inf:
        return f"p99 latency above the largest bucket, over the limit of {plan.max_p99_seconds:g} s"
    return None
