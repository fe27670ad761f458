"""Three workers provision 30 workspaces at once; each is provisioned exactly once, and a later reconcile of a
converged workspace creates nothing."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from control_plane.reconciler.queue import Cause, defer_reconcile
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Workspace
from tests.reconciler.conftest import Plane, all_server_pids

pytestmark = pytest.mark.slow

COUNT = 30


def _reconciled_after(converged: Workspace) -> Callable[[Workspace], bool]:
    assert converged.last_reconciled_at is not None
    return lambda ws: ws.last_reconciled_at is not None and ws.last_reconciled_at > converged.last_reconciled_at


def test_three_workers_thirty_workspaces(plane: Plane) -> None:
    ids = [plane.create_workspace(f"team-{i:02d}") for i in range(COUNT)]
    for ws_id in ids:
        defer_reconcile(ws_id, Cause.signup)
        defer_reconcile(ws_id, Cause.signup)  # a duplicate request is deduplicated
    with plane.admin() as conn:
        locks = [f"reconcile:{ws_id}" for ws_id in ids]
        waiting = conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE queueing_lock = ANY(%s)", [locks])
        assert waiting.fetchone() == (COUNT,), "one waiting reconcile per workspace"
    started = time.monotonic()
    for _ in range(3):
        plane.start_worker(concurrency=4)

    rows = [plane.wait_state(ws_id, Lifecycle.trialing, timeout=150) for ws_id in ids]
    print(f"{COUNT} workspaces provisioned in {time.monotonic() - started:.1f}s")

    # Wait until the slow re-verification (a 20 s period here) has had every converged workspace reconciled again. A
    # reconcile records ``last_reconciled_at`` once it has ensured every step, and one workspace's reconciles never
    # overlap (procrastinate ``lock``), so a later value is a whole pass that started from the converged state; the
    # test asked for one reconcile per workspace, so the later ones were the re-verification's. They created nothing.
    converged = time.monotonic()
    later = [plane.wait_for(ws_id, _reconciled_after(ws), timeout=90) for ws_id, ws in zip(ids, rows, strict=True)]
    print(f"every workspace re-verified {time.monotonic() - converged:.1f}s after convergence")
    servers = all_server_pids()
    for ws_id, ws, again in zip(ids, rows, later, strict=True):
        assert servers.get(str(plane.runtime_dir(ws_id))) == [ws.outputs["pid"]]
        assert again.outputs["created"]["database"] == 1, again.outputs
        assert again.outputs["created"]["server"] == 1, again.outputs
        assert again.outputs["pid"] == ws.outputs["pid"]
        assert {c["status"] for c in again.conditions} == {"True"}
    ports = {ws.outputs["port"] for ws in rows}
    assert len(ports) == COUNT
    with plane.admin() as conn:
        names = [f"ws_{ws_id.hex[:12]}" for ws_id in ids]
        count = conn.execute("SELECT count(*) FROM pg_database WHERE datname = ANY(%s)", [names]).fetchone()
    assert count == (COUNT,)
    # Which workers did the work: all three took part.
    logs = plane.worker_logs(tail=100_000)
    assert all(f"test-worker-{i}: Starting job reconcile_workspace" in logs for i in range(3))
