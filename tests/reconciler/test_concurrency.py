"""Three workers provision 30 workspaces at once; each is provisioned exactly once."""

from __future__ import annotations

import time

import pytest

from control_plane.reconciler.queue import defer_reconcile
from control_plane.workspaces.lifecycle import Lifecycle
from tests.reconciler.conftest import Plane, all_server_pids

pytestmark = pytest.mark.slow

COUNT = 30


def test_three_workers_thirty_workspaces(plane: Plane) -> None:
    ids = [plane.create_workspace(f"team-{i:02d}") for i in range(COUNT)]
    for _ in range(3):
        plane.start_worker(concurrency=4)
    started = time.monotonic()
    for ws_id in ids:
        defer_reconcile(ws_id)
        defer_reconcile(ws_id)  # duplicate requests are deduplicated (or harmless)

    rows = [plane.wait_state(ws_id, Lifecycle.trialing, timeout=150) for ws_id in ids]
    print(f"{COUNT} workspaces provisioned in {time.monotonic() - started:.1f}s")

    time.sleep(2.5)  # let a resync pass over the converged workspaces: it must not create anything
    servers = all_server_pids()
    for ws_id, ws in zip(ids, rows, strict=True):
        again = plane.row(ws_id)
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
