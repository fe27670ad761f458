"""``GET /metrics``: request counts and latencies for the control plane's upgrade gates, over every worker."""

from __future__ import annotations

import http.client
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.workspace_server.conftest import CONTROL_TOKEN
from tests.workspace_server.scrape import parse, requests_by_class, scrape
from workspace_server.release import RELEASE_VERSION

REDIS_URL = os.environ.get("CANOPY_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
DURATION = "canopy_ws_http_request_duration_seconds"
BOUNDS = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0", "+Inf")


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Basic {CONTROL_TOKEN}"])
def test_metrics_need_the_control_token(server: Any, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = httpx.get(f"{server.base_url}/metrics", headers=headers, timeout=10)
    assert response.status_code == 401
    assert response.json()["id"] == "api.canopy.control_token.app_error"


def test_requests_are_counted_by_status_class_with_their_latency(server: Any) -> None:
    before = scrape(None, server.base_url)
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        for _ in range(3):
            assert client.get("/api/v4/config/client", params={"format": "old"}).status_code == 200
        assert client.get("/api/v4/no/such/route").status_code == 404
        assert client.get("/api/v4/users/me").status_code == 401
        assert client.get("/api/v4/users/%00").status_code == 400  # refused by the middleware, before the app
        for _ in range(3):  # neither pings nor scrapes count
            assert client.get("/api/v4/system/ping").status_code == 200
            scrape(client, server.base_url)
    after = scrape(None, server.base_url)
    counted = {k: requests_by_class(after)[k] - requests_by_class(before)[k] for k in ("2xx", "3xx", "4xx", "5xx")}
    assert counted == {"2xx": 3, "3xx": 0, "4xx": 3, "5xx": 0}
    assert after[(f"{DURATION}_count", ())] - before[(f"{DURATION}_count", ())] == 6
    assert after[(f"{DURATION}_sum", ())] > before[(f"{DURATION}_sum", ())]
    buckets = [after[(f"{DURATION}_bucket", (("le", le),))] for le in BOUNDS]
    assert buckets == sorted(buckets) and buckets[-1] == after[(f"{DURATION}_count", ())]
    assert after[("canopy_ws_http_requests_in_flight", ())] == 0
    assert after[("canopy_ws_release_info", (("version", RELEASE_VERSION),))] == 1


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@contextmanager
def _only_running(worker: int, workers: list[int]) -> Iterator[None]:
    """The other workers stopped (SIGSTOP): only ``worker`` accepts connections meanwhile."""
    others = [pid for pid in workers if pid != worker]
    for pid in others:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in others:
            os.kill(pid, signal.SIGCONT)


def _get(connection: http.client.HTTPConnection, path: str, **headers: str) -> tuple[int, bytes]:
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    return response.status, response.read()


def test_requests_served_by_every_worker_are_counted(create_database: Any, spawn_server: Any, tmp_path: Path) -> None:
    server = spawn_server(create_database("ws_metrics_workers"), tmp_path, WS_WORKERS="3", WS_REDIS_URL=REDIS_URL)
    server.wait_ready()
    workers = _children(server.proc.pid)
    assert len(workers) == 3, server.log()
    scrapes = []
    for served, worker in enumerate(workers, start=1):
        with _only_running(worker, workers):
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            try:
                for _ in range(served):  # 1, 2 then 3 requests: each worker's share tells in the total
                    assert _get(connection, "/api/v4/config/client?format=old")[0] == 200
                status, body = _get(connection, "/metrics", Authorization=f"Bearer {CONTROL_TOKEN}")
                assert status == 200
                scrapes.append(parse(body.decode()))
            finally:
                connection.close()
    # Each scrape, served by the worker that was running, counts what every worker served so far.
    assert [requests_by_class(samples)["2xx"] for samples in scrapes] == [1, 3, 6]
    assert [samples[(f"{DURATION}_count", ())] for samples in scrapes] == [1, 3, 6]
