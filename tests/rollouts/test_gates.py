"""Health gates over the workspace server's real ``/metrics`` exposition (prometheus_client's text format)."""

from __future__ import annotations

import math

from control_plane.rollouts import gates
from control_plane.rollouts.schemas import Plan
from workspace_server.metrics import BUCKETS, FIRST_BUCKET, STATUS_CLASSES
from workspace_server.metrics_exposition import exposition

PLAN = Plan(max_error_rate=0.02, max_p99_seconds=2.0)


def scrape(by_class: dict[str, int], latencies: dict[float, int]) -> gates.Sample:
    """What the gate reads of a server that answered ``by_class`` requests, ``latencies[bound]`` of them in the
    bucket ending at ``bound`` (``math.inf``: the last one)."""
    bounds = [*BUCKETS, math.inf]
    totals = [float(by_class.get(c, 0)) for c in STATUS_CLASSES]
    totals += [float(latencies.get(b, 0)) for b in bounds]
    totals += [sum(b * n for b, n in latencies.items() if not math.isinf(b)), 0.0]
    assert len(totals) == FIRST_BUCKET + len(bounds) + 2
    return gates.parse(exposition(totals).decode())


def test_parse_reads_the_requests_by_class_and_the_cumulative_histogram() -> None:
    sample = scrape({"2xx": 90, "4xx": 7, "5xx": 3}, {0.005: 50, 0.1: 45, 5.0: 5})
    assert sample.by_class == {"2xx": 90.0, "3xx": 0.0, "4xx": 7.0, "5xx": 3.0}
    assert sample.buckets[0.005] == 50 and sample.buckets[0.05] == 50 and sample.buckets[0.1] == 95
    assert sample.buckets[5.0] == 100 and sample.buckets[math.inf] == 100
    assert gates.Sample.from_json(sample.as_json()) == sample, "the baseline column holds it exactly"


def test_p99_is_the_bound_of_the_bucket_holding_the_99th_percentile() -> None:
    assert gates.p99(scrape({"2xx": 100}, {0.01: 99, 2.5: 1}).buckets) == 0.01
    assert gates.p99(scrape({"2xx": 100}, {0.01: 98, 2.5: 2}).buckets) == 2.5
    assert gates.p99(scrape({"2xx": 100}, {0.01: 50, math.inf: 50}).buckets) == math.inf
    assert gates.p99(scrape({}, {}).buckets) == 0.0


def test_judge_counts_only_the_requests_served_since_the_baseline() -> None:
    baseline = scrape({"2xx": 1000, "5xx": 500}, {0.01: 1000, 10.0: 500})  # a bad past, before the upgrade
    healthy = scrape({"2xx": 1990, "5xx": 510}, {0.01: 1990, 10.0: 510})  # 10 errors in 1000 new requests
    assert gates.judge(baseline, healthy, PLAN) is None
    assert gates.judge(baseline, baseline, PLAN) is None, "no request since: nothing to judge"


def test_judge_refuses_an_error_rate_over_the_limit() -> None:
    baseline = scrape({"2xx": 100}, {0.01: 100})
    now = scrape({"2xx": 190, "5xx": 10}, {0.01: 200})
    assert gates.judge(baseline, now, PLAN) == "error rate 10.0% over the limit of 2.0% (10 of 100 requests failed)"


def test_judge_refuses_a_p99_over_the_limit_including_beyond_the_last_bucket() -> None:
    baseline = scrape({"2xx": 100}, {0.01: 100})
    slow = scrape({"2xx": 200}, {0.01: 190, 5.0: 10})
    assert gates.judge(baseline, slow, PLAN) == "p99 latency 5 s over the limit of 2 s"
    slowest = scrape({"2xx": 200}, {0.01: 190, math.inf: 10})
    assert gates.judge(baseline, slowest, PLAN) == "p99 latency above the largest bucket, over the limit of 2 s"
    assert gates.judge(baseline, slow, Plan(max_p99_seconds=5.0)) is None
