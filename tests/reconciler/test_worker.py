"""The worker entry point refuses an unmigrated database, and deferring is idempotent."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import timedelta

from control_plane.core.clock import utcnow
from control_plane.reconciler.queue import Cause, defer_reconcile
from tests.reconciler.conftest import ROOT, Plane, secret_env


def test_worker_refuses_unmigrated_database(create_database: Callable[[str], str]) -> None:
    url = create_database("unmigrated")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANOPY_")} | {"CANOPY_DATABASE_URL": url}
    env |= secret_env()
    result = subprocess.run(
        [sys.executable, "-m", "control_plane.reconciler.worker", "--concurrency", "1"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "canopy migrate" in result.stderr


def test_defer_is_deduplicated_and_an_immediate_request_expedites_a_backoff(plane: Plane) -> None:
    ws_id = uuid.uuid4()  # no worker runs in this module: the jobs just wait
    later = utcnow() + timedelta(hours=1)
    defer_reconcile(ws_id, Cause.operator, schedule_at=later)
    defer_reconcile(ws_id, Cause.operator, schedule_at=later)
    query = "SELECT scheduled_at, lock FROM procrastinate_jobs WHERE queueing_lock = %s AND status = 'todo'"
    with plane.admin() as conn:
        rows = conn.execute(query, [f"reconcile:{ws_id}"]).fetchall()
    assert len(rows) == 1 and rows[0][0] > utcnow() + timedelta(minutes=59)
    assert rows[0][1] == f"workspace:{ws_id}"

    defer_reconcile(ws_id, Cause.signup)
    with plane.admin() as conn:
        rows = conn.execute(query, [f"reconcile:{ws_id}"]).fetchall()
    assert len(rows) == 1 and rows[0][0] <= utcnow()
