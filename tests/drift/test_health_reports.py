"""Workspace servers' health reports on the local runtime, through a real ``canopy api``: a healthy server reports
(nothing wrong); its files directory removed behind Canopy's back, it reports the problem at once, the drift
detection reconciles the workspace, and the next report is clean. The probe's rules on stopped reports, and the
route's refusals, are checked against the real Redis and API."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from control_plane.core import fleet_counters
from control_plane.core.settings import get_settings
from control_plane.drift import health
from control_plane.drift.health import HealthReports
from control_plane.providers.base import Drift, Watched, WorkspaceSpec
from control_plane.reconciler.queue import Cause, defer_reconcile, reconcile_queue
from control_plane.workspaces.lifecycle import Lifecycle
from tests.api_process import canopy_api, free_port
from tests.reconciler.conftest import Plane, plane_context
from tests.waiting import wait_until

HEARTBEAT_SECONDS = 2


@pytest.fixture(scope="module")
def reporting_plane(
    create_database: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Plane, str]]:
    port = free_port()
    environment = f"hr{uuid.uuid4().hex[:6]}"  # its own reports and counters in the shared Redis
    env = {
        "CANOPY_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "CANOPY_HEALTH_REPORT_SECONDS": str(HEARTBEAT_SECONDS),
        "CANOPY_AWS_ENVIRONMENT": environment,
        "CANOPY_REVERIFY_SECONDS": str(10**9),
    }
    with plane_context(create_database, tmp_path_factory, "health", **env) as plane:
        try:
            with canopy_api(plane.env, port, tmp_path_factory.mktemp("api") / "api.log") as url:
                yield plane, url
        finally:
            redis = fleet_counters.connection(get_settings().redis_url)
            redis.delete(health.key(environment), fleet_counters.key(environment))


def report_of(workspace_id: uuid.UUID) -> dict[str, Any] | None:
    raw = fleet_counters.connection(get_settings().redis_url).hget(
        health.key(get_settings().aws_environment), str(workspace_id)
    )
    return json.loads(raw) if raw else None


def drift_found() -> float:
    return fleet_counters.read().get(("drift_found", "health-report"), 0.0)


def test_a_server_reports_a_problem_and_the_repair_follows(reporting_plane: tuple[Plane, str]) -> None:
    plane, _ = reporting_plane
    plane.start_worker()
    ws_id = plane.create_workspace("reporter")
    defer_reconcile(ws_id, Cause.signup)
    ws = plane.wait_state(ws_id, Lifecycle.trialing, timeout=120)
    wait_until("a first report", lambda: report_of(ws_id) is not None, timeout=60)
    assert report_of(ws_id) == {"at": pytest.approx(time.time(), abs=30), "problems": []}
    wait_until(
        "no reconcile left", lambda: reconcile_queue(ws_id, 30)["waiting"] + reconcile_queue(ws_id, 30)["running"] == 0
    )
    found_before = drift_found()

    shutil.rmtree(ws.outputs["files_dir"])  # behind Canopy's back
    wait_until(
        lambda: f"the repair\n{plane.worker_logs()}",
        lambda: Path(ws.outputs["files_dir"]).is_dir() and drift_found() > found_before,
        timeout=60,
    )
    assert f"workspace {ws_id} drifted (health-report): its server reports: files directory not writable" in (
        plane.worker_logs(tail=100_000)
    )
    wait_until("a clean report", lambda: (report_of(ws_id) or {}).get("problems") == [], timeout=60)


def test_the_route_takes_only_the_workspaces_own_token(reporting_plane: tuple[Plane, str]) -> None:
    plane, url = reporting_plane
    ws_id = plane.create_workspace("impostor")
    for headers in ({}, {"Authorization": "Bearer nope"}):
        answer = httpx.post(f"{url}/api/v1/workspaces/{ws_id}/health", json={"problems": []}, headers=headers)
        assert answer.status_code == 401 and answer.headers["content-type"] == "application/problem+json"
    unknown = httpx.post(
        f"{url}/api/v1/workspaces/{uuid.uuid4()}/health", json={}, headers={"Authorization": "Bearer x"}
    )
    assert unknown.status_code == 401
    bad = httpx.post(f"{url}/api/v1/workspaces/{ws_id}/health", json={"problems": ["x" * 201]})
    assert bad.status_code in (401, 422)
    assert report_of(ws_id) is None


def _spec() -> WorkspaceSpec:
    return WorkspaceSpec(
        id=uuid.uuid4(), slug="s", organization_id=uuid.uuid4(), tier="professional", region="r", display_name="S"
    )


def test_stopped_reports_are_measured_against_the_newest(reporting_plane: tuple[Plane, str]) -> None:
    settings = get_settings()
    redis = fleet_counters.connection(settings.redis_url)
    fresh, stale, silent, sick = (Watched(_spec(), datetime.now(UTC)) for _ in range(4))
    now = time.time()
    reports = {
        fresh: {"at": now, "problems": []},
        stale: {"at": now - 4 * HEARTBEAT_SECONDS, "problems": []},
        sick: {"at": now, "problems": ["database unreachable"]},
    }
    for item, report in reports.items():
        redis.hset(health.key(settings.aws_environment), str(item.spec.id), json.dumps(report))
    found = HealthReports(settings).find_drift([fresh, stale, silent, sick], {})  # type: ignore[arg-type]
    assert found == [
        Drift(stale.spec.id, "health-report", "its server stopped reporting its health"),
        Drift(sick.spec.id, "health-report", "its server reports: database unreachable"),
    ]
    # Without any recent report (the API was down), nobody counts as silent.
    assert HealthReports(settings).find_drift([stale, silent], {}) == []  # type: ignore[arg-type]
