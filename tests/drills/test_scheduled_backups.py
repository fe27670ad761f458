"""Scheduled backups and retention over simulated days (the clock file moves every process's clock): each day every
workspace with data gets one scheduled backup; a Professional keeps its 7 newest days, an Enterprise all of its 30;
a manual backup goes after its 30 days. Expired backups' part files are gone and the expiries audited."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

from control_plane.backups import schedule
from control_plane.core.clock import advance
from control_plane.core.settings import get_settings
from control_plane.workspaces.models import Tier
from tests.drills.conftest import DrillPlane

DAYS = 9


def _part_files(drilling: DrillPlane, workspace_id: uuid.UUID) -> set[str]:
    root = Path(drilling.plane.state_dir).resolve() / "backups" / str(workspace_id)
    return {str(p.relative_to(root).parent) for p in root.rglob("*.part")} if root.exists() else set()


def test_a_scheduled_backup_a_day_and_retention_per_tier(drilling: DrillPlane) -> None:
    pro, pro_driver = drilling.workspace(f"pro-{uuid.uuid4().hex[:6]}")
    ent, _ = drilling.workspace(f"ent-{uuid.uuid4().hex[:6]}", Tier.enterprise)
    drilling.post(pro_driver, 3)
    manual = drilling.back_up(pro)["id"]
    settings = get_settings()

    for day in range(1, DAYS + 1):
        advance(drilling.clock_file, timedelta(days=1))
        requested = schedule.request_scheduled(settings)
        assert len(requested) == 2, f"day {day}: {requested}"
        assert schedule.request_scheduled(settings) == []  # one a day
        for workspace_id in (pro, ent):
            drilling.wait_completed(workspace_id, drilling.backups(workspace_id)[-1][2])
        schedule.apply_retention(settings)

    pro_backups, ent_backups = drilling.backups(pro), drilling.backups(ent)
    pro_scheduled = [(state, i) for kind, state, i in pro_backups if kind == "scheduled"]
    assert [state for state, _ in pro_scheduled] == ["expired"] * (DAYS - 7) + ["completed"] * 7
    assert [(kind, state) for kind, state, _ in ent_backups] == [("scheduled", "completed")] * DAYS
    kept = {i for state, i in pro_scheduled if state == "completed"} | {manual}
    assert _part_files(drilling, pro) == kept  # the expired ones' parts are discarded

    advance(drilling.clock_file, timedelta(days=25))  # the manual backup is now 34 days old
    assert set(schedule.apply_retention(settings)) == {uuid.UUID(manual)}
    assert _part_files(drilling, pro) == kept - {manual}
    assert [(k, s) for k, s, i in drilling.backups(pro) if i == manual] == [("manual", "expired")]
    with drilling.plane.admin() as conn:
        audited = conn.execute(
            "SELECT count(*) FROM audit_entries WHERE action = 'workspace_backup.expire' AND actor = 'retention'"
        ).fetchone()
    assert audited == (DAYS - 7 + 1,)
    assert schedule.apply_retention(settings) == []

    cli = subprocess.run(  # a day after the last scheduled ones: both are due again
        [sys.executable, "-m", "control_plane.cli", "backups", "schedule"],
        env=drilling.plane.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.strip() == "2 scheduled backups requested, 0 expired backups discarded"
    for workspace_id in (pro, ent):
        drilling.wait_completed(workspace_id, drilling.backups(workspace_id)[-1][2])
