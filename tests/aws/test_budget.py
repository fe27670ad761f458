"""The shared AWS call budget: processes calling moto through ``Aws`` together stay within one (cell, service)
rate by the budget's own per-second accounting, a throttling answer is retried with backoff and counted, and a
call that cannot get a token in time is a ProviderError."""

from __future__ import annotations

import multiprocessing
import time
import uuid
from typing import Any

import pytest
import redis
from botocore.awsrequest import AWSResponse
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from control_plane.core import fleet_counters
from control_plane.core.fleet_metrics import CountersCollector
from control_plane.core.settings import get_settings
from control_plane.providers.aws.budget import CALLS, THROTTLED, WAITED, CallBudget
from control_plane.providers.aws.common import Aws
from control_plane.providers.base import ProviderError
from control_plane.providers.scope import about_cell
from tests.harness.moto import REGION, MotoServer

REDIS_URL = "redis://127.0.0.1:6379/0"
RATE = 10.0
CALLS_PER_PROCESS = 12
PROCESSES = 3


def budget(environment: str, rate: float = RATE, max_wait: float = 60.0) -> CallBudget:
    """A budget of its own (``environment`` namespaces its buckets and counters) holding one call at a time."""
    return CallBudget(REDIS_URL, environment, {"sts": rate}, 100.0, burst_seconds=1 / rate, max_wait=max_wait)


def counters(environment: str) -> dict[tuple[str, ...], float]:
    raw = fleet_counters.connection(REDIS_URL).hgetall(fleet_counters.key(environment))
    return {tuple(str(k).split(fleet_counters.SEPARATOR)): float(v) for k, v in raw.items()}


def per_second(environment: str, cell: str, service: str) -> dict[int, int]:
    """The budget's own accounting: calls granted in each Unix second."""
    connection = fleet_counters.connection(REDIS_URL)
    prefix = CallBudget(REDIS_URL, environment, {}, 1.0).used_key(cell, service, 0)[:-1]
    keys = list(connection.scan_iter(match=prefix + "*"))
    return {int(str(k).rsplit(":", 1)[1]): int(connection.get(k) or 0) for k in keys}


@pytest.fixture
def environment() -> Any:
    name = f"budget-test-{uuid.uuid4().hex[:8]}"
    yield name
    connection = fleet_counters.connection(REDIS_URL)
    for key in connection.scan_iter(match=f"canopy:{name}:*"):
        connection.delete(key)


def call_sts(environment: str, calls: int) -> None:
    """One process's calls (the moto endpoint comes from the inherited environment)."""
    aws = Aws(budget(environment))
    with about_cell("cell-a"):
        for _ in range(calls):
            aws.client("sts", REGION).get_caller_identity()


def test_processes_calling_together_stay_within_the_cells_rate(moto_server: MotoServer, environment: str) -> None:
    spawn = multiprocessing.get_context("spawn")
    workers = [spawn.Process(target=call_sts, args=(environment, CALLS_PER_PROCESS)) for _ in range(PROCESSES)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0

    seconds = per_second(environment, "cell-a", "sts")
    total = PROCESSES * CALLS_PER_PROCESS
    assert sum(seconds.values()) == total
    burst = 1  # a bucket of one call: any second holds at most its rate plus that one
    assert max(seconds.values()) <= RATE + burst, seconds
    span = max(seconds) - min(seconds) + 1
    assert total <= burst + RATE * span, seconds
    figures = counters(environment)
    assert figures[(CALLS, "cell-a", "sts")] == total
    assert figures[(WAITED, "cell-a", "sts")] > 0  # the budget, not the callers' own pace, set the rate


def test_a_throttling_answer_is_retried_with_backoff_and_counted(moto_server: MotoServer, environment: str) -> None:
    aws = Aws(budget(environment, rate=100.0))
    sts = aws.client("sts", REGION)
    sent: list[float] = []

    def throttle_once(**_: Any) -> AWSResponse | None:
        sent.append(time.monotonic())
        if len(sent) > 1:
            return None
        body = (
            b'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
            b"<Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>1</RequestId></ErrorResponse>"
        )
        return AWSResponse("https://sts.test/", 400, {}, _Raw(body))

    sts.meta.events.register("before-send.sts.GetCallerIdentity", throttle_once)
    with about_cell("cell-b"):
        answer = sts.get_caller_identity()
    assert answer["ResponseMetadata"]["RetryAttempts"] == 1
    assert len(sent) == 2
    figures = counters(environment)
    assert figures[(THROTTLED, "cell-b", "sts")] == 1
    assert figures[(CALLS, "cell-b", "sts")] == 2  # the throttled attempt took from the budget too


def test_a_call_that_gets_no_token_in_time_is_a_retryable_provider_error(
    moto_server: MotoServer, environment: str
) -> None:
    aws = Aws(budget(environment, rate=0.01, max_wait=0.5))
    sts = aws.client("sts", REGION)
    sts.get_caller_identity()  # the bucket's one token
    with pytest.raises(ProviderError, match=r"AWS sts call budget of cell control \(0.01/s\) had no room for 0.5s"):
        sts.get_caller_identity()


def test_without_redis_the_call_goes_ahead(moto_server: MotoServer) -> None:
    unreachable = CallBudget("redis://127.0.0.1:1/0", "nowhere", {}, 1.0)
    with pytest.raises(redis.ConnectionError):
        fleet_counters.connection(unreachable.url).ping()
    assert Aws(unreachable).client("sts", REGION).get_caller_identity()["Account"]


class _Raw:
    """The raw body botocore reads an answer from."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


def test_metrics_show_the_calls_and_the_budgets_use(
    moto_server: MotoServer, environment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CANOPY_AWS_ENVIRONMENT", environment)
    monkeypatch.setenv("CANOPY_AWS_BUDGET_RATES", '{"sts": 4}')
    get_settings.cache_clear()
    try:
        before = samples()
        aws = Aws()  # the settings' budget
        with about_cell("cell-c"):
            for _ in range(3):
                aws.client("sts", REGION).get_caller_identity()
        after = samples()
    finally:
        get_settings.cache_clear()
    calls = ("canopy_aws_calls_total", (("cell", "cell-c"), ("service", "sts")))
    assert before.get(calls, 0) == 0 and after[calls] == 3
    assert after[("canopy_aws_budget_rate", (("service", "sts"),))] == 4
    assert 0 <= after[("canopy_aws_budget_used_ratio", (("cell", "cell-c"), ("service", "sts")))] <= 1.25


def samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The counters' series as ``/metrics`` shows them."""
    registry = CollectorRegistry()
    registry.register(CountersCollector())
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for sample in family.samples
    }
