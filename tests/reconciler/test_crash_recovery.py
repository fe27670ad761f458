"""A worker SIGKILLed in the middle of provisioning: another worker finishes the job, nothing is doubled."""

from __future__ import annotations

import signal
import time

import pytest

from control_plane.reconciler.queue import Cause, defer_reconcile
from control_plane.workspaces.lifecycle import Lifecycle
from tests.reconciler.conftest import Plane, server_pids
from tests.waiting import wait_until

pytestmark = pytest.mark.slow


def _compute_ready(ws: object) -> bool:
    conditions = {c["type"]: c["status"] for c in ws.conditions}  # type: ignore[attr-defined]
    return conditions.get("ComputeReady") == "True"


def _wait_for_log(plane: Plane, text: str, timeout: float = 30.0) -> None:
    wait_until(
        lambda: f"{text!r} in the logs\n{plane.worker_logs()}", lambda: text in plane.worker_logs(tail=10_000), timeout
    )


def test_killed_worker_job_is_recovered(plane: Plane) -> None:
    ws_id = plane.create_workspace("crash")
    doomed = plane.start_worker(CANOPY_FAULT_PAUSE_AFTER_STEP="compute")
    defer_reconcile(ws_id, Cause.signup)

    ws = plane.wait_for(ws_id, _compute_ready, timeout=60)
    _wait_for_log(plane, "fault injection: pausing after compute")  # the worker now sleeps, holding the job
    assert ws.lifecycle_state == Lifecycle.provisioning
    first_pid = ws.outputs["pid"]
    assert server_pids(plane.runtime_dir(ws_id)) == [first_pid]
    with plane.admin() as conn:
        doing = conn.execute(
            "SELECT id FROM procrastinate_jobs WHERE status = 'doing' AND lock = %s", [f"workspace:{ws_id}"]
        ).fetchall()
    assert len(doing) == 1, "the job must still be held by the paused worker"
    job_id = doing[0][0]

    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    killed = time.monotonic()
    plane.start_worker()

    ws = plane.wait_state(ws_id, Lifecycle.trialing, timeout=60)
    print(f"recovered {time.monotonic() - killed:.1f}s after the kill")
    assert server_pids(plane.runtime_dir(ws_id)) == [first_pid], "the running server was adopted, not doubled"
    assert ws.outputs["pid"] == first_pid
    assert ws.outputs["created"]["server"] == 1
    assert ws.outputs["created"]["database"] == 1
    name = f"ws_{ws_id.hex[:12]}"
    with plane.admin() as conn:
        databases = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname LIKE %s", [f"ws_{ws_id.hex[:12]}%"]
        ).fetchone()
    assert databases == (1,) and plane.database_exists(name)
    assert f"retried stalled job {job_id} " in plane.worker_logs(tail=10_000), "recovered by stalled-job recovery"
