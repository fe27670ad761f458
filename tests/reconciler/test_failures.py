"""A failing step is recorded (attempts, last error, next attempt) and retried with backoff until it heals."""

from __future__ import annotations

import os
import signal
import time

import pytest

from control_plane.core.clock import utcnow
from control_plane.reconciler.queue import Cause, defer_reconcile
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Tier
from tests.reconciler.conftest import Plane, pid_alive, server_pids

pytestmark = pytest.mark.slow


def _watch_attempts(plane: Plane, ws_id: object, until: int, timeout: float) -> dict[int, float]:
    """For each attempt count, seconds from first sight until ``next_attempt_at``."""
    seen: dict[int, float] = {}
    deadline = time.monotonic() + timeout
    while until not in seen:
        assert time.monotonic() < deadline, f"only saw attempts {sorted(seen)}\n{plane.worker_logs()}"
        ws = plane.row(ws_id)  # type: ignore[arg-type]
        if ws.reconcile_attempts and ws.reconcile_attempts not in seen and ws.next_attempt_at:
            seen[ws.reconcile_attempts] = (ws.next_attempt_at - utcnow()).total_seconds()
        time.sleep(0.03)
    return seen


def test_failing_step_backs_off_then_converges(plane: Plane) -> None:
    ws_id = plane.create_workspace("broken", tier=Tier.enterprise)
    # The cause: a plain file where the workspace's directory must go, so the storage step fails.
    blocker = plane.state_dir / "workspaces" / str(ws_id)
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("in the way")
    plane.start_worker()
    defer_reconcile(ws_id, Cause.signup)

    gaps = _watch_attempts(plane, ws_id, until=4, timeout=60)
    # backoff = min(max=4, base=0.5 * 2**(attempts-1)) * jitter(0.5..1.0)
    assert 0 < gaps[1] <= 0.5, gaps
    assert 1.6 <= gaps[4] <= 4.0, gaps

    ws = plane.row(ws_id)
    conditions = {c["type"]: c for c in ws.conditions}
    assert ws.lifecycle_state == Lifecycle.provisioning
    assert ws.last_error is not None and ws.last_error.startswith("storage: "), ws.last_error
    assert conditions["DatabaseReady"]["status"] == "True"
    assert conditions["StorageReady"]["status"] == "False" and conditions["StorageReady"]["reason"] == "Failed"
    assert conditions["Available"]["status"] == "False"
    assert "ComputeReady" not in conditions

    blocker.unlink()  # remove the cause

    ws = plane.wait_state(ws_id, Lifecycle.active, timeout=60)
    assert ws.reconcile_attempts == 0 and ws.last_error is None and ws.next_attempt_at is None
    assert {c["status"] for c in ws.conditions} == {"True"}
    assert ws.trial_ends_at is None, "enterprise workspaces do not trial"
    assert ws.outputs["created"]["database"] == 1


def test_wedged_server_is_replaced(plane: Plane) -> None:
    plane.start_worker(CANOPY_WORKSPACE_READY_TIMEOUT_SECONDS="8")
    ws_id = plane.create_workspace("wedged")
    defer_reconcile(ws_id, Cause.signup)
    ws = plane.wait_state(ws_id, Lifecycle.trialing)
    pid = ws.outputs["pid"]

    os.kill(pid, signal.SIGSTOP)  # holds its lock, answers nothing: its ping (the drift check) fails
    # A reconcile already past compute may fail first at a later step (the plan request times out); the one the drift
    # check asks for finds the server not ready and stops it.
    plane.wait_for(ws_id, lambda w: "not ready" in (w.last_error or ""), timeout=60)
    ws = plane.wait_for(ws_id, lambda w: w.outputs.get("pid") not in (None, pid) and w.last_error is None, timeout=90)
    assert not pid_alive(pid)
    assert server_pids(plane.runtime_dir(ws_id)) == [ws.outputs["pid"]]
    assert {c["status"] for c in ws.conditions} == {"True"}
