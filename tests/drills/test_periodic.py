"""The workers' periodic tasks on their own: a worker with a short backup period takes a new workspace's scheduled
backup within its first period, and one with a short drill period drills it."""

from __future__ import annotations

import uuid

from tests.drills.conftest import DrillPlane
from tests.waiting import wait_until

PERIOD_SECONDS = 24  # checked every second; a new workspace's first backup falls within its first period


def test_workers_take_scheduled_backups_and_drill_them(drilling: DrillPlane) -> None:
    plane = drilling.plane
    plane.start_worker(CANOPY_BACKUP_SCHEDULE_SECONDS=str(PERIOD_SECONDS), CANOPY_BACKUP_DRILL_SECONDS="2")
    workspace_id, _ = drilling.workspace(f"periodic-{uuid.uuid4().hex[:6]}")

    def scheduled() -> bool:
        return any(kind == "scheduled" and state == "completed" for kind, state, _ in drilling.backups(workspace_id))

    wait_until(lambda: f"a scheduled backup\n{plane.worker_logs()}", scheduled, timeout=PERIOD_SECONDS + 90)
    backup_id = next(i for kind, state, i in drilling.backups(workspace_id) if kind == "scheduled")

    def drilled() -> list[tuple[str, str]]:
        with plane.admin() as conn:
            rows = conn.execute(
                "SELECT outcome, requested_by FROM backup_drills WHERE backup_id = %s", [backup_id]
            ).fetchall()
        return [(str(outcome), str(actor)) for outcome, actor in rows]

    wait_until(lambda: f"a drill of {backup_id}\n{plane.worker_logs()}", lambda: bool(drilled()), timeout=120)
    assert drilled()[0] == ("ok", "drills")
