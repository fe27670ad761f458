"""``/metrics`` shows the reconcile queue and the reconciles by cause, moving as work is deferred and done, and
customer-facing causes are queued above background resyncs."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from control_plane.core import fleet_counters
from control_plane.reconciler.queue import PRIORITIES, Cause, defer_reconcile
from control_plane.workspaces.lifecycle import Lifecycle
from tests.reconciler.conftest import Plane, plane_context
from tests.waiting import wait_until


def scrape(plane: Plane) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics`` by (name, sorted labels)."""
    answer = plane.api.get("/metrics")
    assert answer.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def depth(plane: Plane, state: str) -> float:
    return scrape(plane)[("canopy_reconcile_queue_depth", (("state", state),))]


def reconciles(plane: Plane, cause: Cause) -> float:
    return scrape(plane).get(("canopy_reconciles_total", (("cause", cause.value),)), 0.0)


def test_metrics_follow_the_queue_and_count_reconciles_by_cause(
    create_database: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    environment = f"metrics-{uuid.uuid4().hex[:8]}"  # its own counters in the shared Redis
    with plane_context(create_database, tmp_path_factory, "metrics", CANOPY_AWS_ENVIRONMENT=environment) as plane:
        try:
            assert depth(plane, "due") == 0
            assert reconciles(plane, Cause.operator) == 0
            for _ in range(3):  # no worker yet: the jobs wait
                defer_reconcile(uuid.uuid4(), Cause.operator)
            ws_id = plane.create_workspace("metrics-a")
            defer_reconcile(ws_id, Cause.signup)
            assert depth(plane, "due") == 4
            assert scrape(plane)[("canopy_reconcile_queue_oldest_due_seconds", ())] >= 0

            plane.start_worker()
            plane.wait_state(ws_id, Lifecycle.trialing, timeout=120)
            wait_until(
                lambda: f"metrics {scrape(plane)}",
                lambda: reconciles(plane, Cause.operator) == 3 and reconciles(plane, Cause.signup) >= 1,
            )
            wait_until("the due jobs taken", lambda: depth(plane, "due") == 0)
        finally:
            connection = fleet_counters.connection("redis://127.0.0.1:6379/0")
            connection.delete(fleet_counters.key(environment))


def test_customer_facing_causes_are_queued_above_resyncs(plane: Plane) -> None:
    ids = {cause: uuid.uuid4() for cause in Cause}  # no worker runs in this module: the jobs just wait
    for cause, ws_id in ids.items():
        defer_reconcile(ws_id, cause)
    query = "SELECT priority, args->>'cause' FROM procrastinate_jobs WHERE queueing_lock = %s AND status = 'todo'"
    with plane.admin() as conn:
        queued = {cause: conn.execute(query, [f"reconcile:{ws_id}"]).fetchone() for cause, ws_id in ids.items()}
    assert all(row == (PRIORITIES[cause], cause.value) for cause, row in queued.items())
    customer_facing = min(PRIORITIES[c] for c in (Cause.wake, Cause.signup, Cause.restore))
    background = max(PRIORITIES[c] for c in Cause if c not in (Cause.wake, Cause.signup, Cause.restore))
    assert customer_facing > background
    assert PRIORITIES[Cause.resync] == min(PRIORITIES.values())
