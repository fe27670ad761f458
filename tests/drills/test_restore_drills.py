"""Restore drills on the local runtime: an intact backup drills ok (its database restored into a scratch database
with exactly its recorded posts); a byte flipped in a backup part on disk (the fault under test) is found, reported
corrupt with what is wrong, audited, counted on /metrics and mailed to the operators; no scratch database is left."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import psycopg

from control_plane.backups import drills
from control_plane.backups.drill_models import DrillOutcome
from control_plane.core.authz import Role
from control_plane.core.settings import get_settings
from tests.drills.conftest import DrillPlane
from tests.waiting import wait_until


def _scratch_databases(drilling: DrillPlane, backup_id: str) -> list[str | None]:
    """The scratch databases the backup's drills restored into, as their audit entries say (None: no restore); none
    may exist any more."""
    with drilling.plane.admin() as conn:
        rows = conn.execute(
            "SELECT after->>'scratch_database' FROM audit_entries WHERE target_id = %s"
            " AND action LIKE 'backup.drill.%%' ORDER BY id",
            [backup_id],
        ).fetchall()
        left = [name for (name,) in rows if drilling.plane.database_exists(str(name))]
    assert left == [], f"scratch databases left: {left}"
    return [name for (name,) in rows]


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_an_intact_backup_drills_ok_and_a_flipped_byte_is_reported_corrupt(drilling: DrillPlane) -> None:
    plane = drilling.plane
    workspace_id, driver = drilling.workspace(f"drill-{uuid.uuid4().hex[:6]}")
    drilling.post(driver, 12)
    backup = drilling.back_up(workspace_id)

    ok = drills.drill(get_settings(), uuid.UUID(backup["id"]), "test")
    assert ok.outcome is DrillOutcome.ok, ok.problems
    assert ok.problems == [] and ok.posts_restored == backup["posts"] and ok.posts_restored >= 12
    (scratch,) = _scratch_databases(drilling, backup["id"])  # restored into, and gone
    assert scratch and scratch.startswith("ws_") and scratch != f"ws_{workspace_id.hex[:12]}"

    with plane.admin() as conn:  # where the part is kept (answers do not say)
        row = conn.execute("SELECT parts FROM workspace_backups WHERE id = %s", [backup["id"]]).fetchone()
    assert row is not None
    database_part = next(p for p in row[0] if p["name"] == "database")
    _flip_a_byte(Path(database_part["location"]["path"]))
    operator = plane.staff_headers(Role.operator)
    asked = plane.api.post(f"/api/v1/backups/{backup['id']}/drills", headers=operator)
    assert asked.status_code == 202, asked.text
    found: list[dict[str, object]] = []

    def drilled_twice() -> bool:
        response = plane.api.get(f"/api/v1/backups/{backup['id']}/drills", headers=operator)
        assert response.status_code == 200, response.text
        found[:] = response.json()["items"]
        return len(found) == 2

    wait_until(lambda: f"the drill asked for\n{plane.worker_logs()}", drilled_twice, timeout=120)
    corrupt = found[0]
    assert corrupt["outcome"] == "corrupt" and corrupt["posts_restored"] is None
    assert corrupt["problems"] == [
        "part database: record 0 fails authentication (altered, reordered or from another part)"
    ]
    assert _scratch_databases(drilling, backup["id"]) == [scratch, None]  # the corrupt part was not restored

    with plane.admin() as conn:
        audited = conn.execute(
            "SELECT action FROM audit_entries WHERE target_id = %s AND action LIKE 'backup.drill.%%' ORDER BY id",
            [backup["id"]],
        ).fetchall()
        mailed = conn.execute(
            "SELECT m.body FROM mail_outbox m JOIN accounts a ON a.email = m.to_address"
            " WHERE a.staff_role = 'operator' AND m.subject LIKE 'Restore drill:%%'"
        ).fetchall()
    assert [a for (a,) in audited] == ["backup.drill.ok", "backup.drill.corrupt"]
    assert mailed and backup["id"] in mailed[0][0] and "part database" in mailed[0][0]
    metrics = plane.api.get("/metrics").text
    assert 'canopy_backup_drills_latest{outcome="corrupt"} 1.0' in metrics
    assert 'canopy_backup_drills_latest{outcome="ok"} 0.0' in metrics

    cli = subprocess.run(
        [sys.executable, "-m", "control_plane.cli", "backups", "drill", backup["id"]],
        env=plane.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 1, cli.stderr
    assert cli.stdout.startswith(f"backup {backup['id']}: corrupt") and "part database" in cli.stdout

    refused = plane.api.post(f"/api/v1/backups/{backup['id']}/drills", headers=plane.owner_headers[workspace_id])
    assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json"
    unknown = plane.api.post(f"/api/v1/backups/{uuid.uuid4()}/drills", headers=operator)
    assert unknown.status_code == 404


def test_the_sample_skips_backups_drilled_recently(drilling: DrillPlane) -> None:
    workspace_id, driver = drilling.workspace(f"sample-{uuid.uuid4().hex[:6]}")
    drilling.post(driver, 3)
    first = drilling.back_up(workspace_id)
    settings = get_settings()
    picked: set[str] = set()
    for drill in drills.drill_sample(settings.model_copy(update={"backup_drill_sample": 100})):
        picked.add(str(drill.backup_id))
    assert first["id"] in picked
    again = {str(d.backup_id) for d in drills.drill_sample(settings.model_copy(update={"backup_drill_sample": 100}))}
    assert first["id"] not in again
    with psycopg.connect(drilling.plane.url) as conn:
        row = conn.execute("SELECT outcome FROM backup_drills WHERE backup_id = %s", [first["id"]]).fetchone()
    assert row == ("ok",)
