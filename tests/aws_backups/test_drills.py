"""Restore drills on the moto + Kubernetes harness, through the same drill flow as the local runtime's.

Professional: a workspace provisioned by the workers, its server run as its Pod would with posts from
``mattermostdriver``, backed up through the API; the drill re-reads both objects and restores the dump into a scratch
database and role on the cell's PostgreSQL (the machine's), gone afterwards: ok, with the backup's posts. A byte
flipped in the database object in the backup bucket (the fault under test) is reported corrupt by the drill an
operator asks for through the API (no 409 on aws any more).

Enterprise: a silo backed up through the API (an RDS snapshot and its bucket's tar); the drill re-reads both and
restores the snapshot into a scratch instance, available under the tenant key, deleted afterwards. moto has no data
behind an RDS endpoint: what is checked of a silo's restored database is what RDS reports of it.

Neither leaves anything the workspace's leak sweep counts: the scratch resources are tagged as their own.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from mattermostdriver import Driver

from control_plane.backups import drills
from control_plane.backups.drill_models import DrillOutcome
from control_plane.core.authz import Role
from control_plane.core.settings import get_settings
from control_plane.kube.client import KubeClient
from control_plane.providers.aws.common import Aws
from control_plane.providers.aws.sweep import LeakSweep
from control_plane.providers.workspace_client import admin_username
from control_plane.reconciler.queue import Cause, defer_reconcile
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Tier
from infra.conventions import TAG_DRILL_OF, tags_from_list, workspace_names
from tests.aws_backups.pod import hand_over_admin, start_pod
from tests.backups.test_restore import _fill
from tests.harness.moto import REGION, MotoServer
from tests.provisioning.conftest import new_workspace
from tests.reconciler.conftest import PASSWORD, Plane
from tests.waiting import wait_until

pytestmark = pytest.mark.slow


def _provision(plane: Plane, tier: Tier, state: Lifecycle) -> tuple[uuid.UUID, str]:
    slug = f"dr{tier.value[:3]}{uuid.uuid4().hex[:6]}"
    ws_id = new_workspace(plane, slug, tier)
    if not plane.workers:
        plane.start_worker()
    defer_reconcile(ws_id, Cause.signup)
    plane.wait_state(ws_id, state, timeout=180)
    return ws_id, slug


def _back_up(plane: Plane, ws_id: uuid.UUID) -> dict[str, Any]:
    """A backup an operator asks for through the API, once the workers completed it."""
    asked = plane.as_operator("POST", f"/api/v1/workspaces/{ws_id}/backups")
    assert asked.status_code == 202, asked.text
    found: dict[str, Any] = {}

    def completed() -> bool:
        response = plane.as_operator("GET", f"/api/v1/workspaces/{ws_id}/backups/{asked.json()['id']}")
        assert response.status_code == 200, response.text
        found.update(response.json())
        assert found["state"] != "failed", found
        return bool(found["state"] == "completed")

    wait_until(lambda: f"backup ({found.get('state')})\n{plane.worker_logs()}", completed, timeout=180)
    return found


def _parts(plane: Plane, backup_id: str) -> dict[str, dict[str, Any]]:
    """The backup's parts by name, where they are kept (answers do not say)."""
    with plane.admin() as conn:
        row = conn.execute("SELECT parts FROM workspace_backups WHERE id = %s", [backup_id]).fetchone()
    assert row is not None
    return {p["name"]: p for p in row[0]}


def _scratch_names(plane: Plane, backup_id: str) -> list[str | None]:
    """What the backup's drills restored into, as their audit entries say (None: nothing restored)."""
    with plane.admin() as conn:
        rows = conn.execute(
            "SELECT after->>'scratch_database' FROM audit_entries WHERE target_id = %s"
            " AND action LIKE 'backup.drill.%%' ORDER BY id",
            [backup_id],
        ).fetchall()
    return [name for (name,) in rows]


def _sweep(ws_id: uuid.UUID) -> list[str]:
    return LeakSweep(Aws(), REGION).leftovers_for(ws_id)


def test_a_pooled_backup_drills_ok_and_a_flipped_byte_in_its_object_is_reported_corrupt(
    plane: Plane, kube: KubeClient, moto_server: MotoServer, tmp_path: Path
) -> None:
    ws_id, slug = _provision(plane, Tier.professional, Lifecycle.trialing)
    server = start_pod(kube, workspace_names("test", ws_id).namespace, moto_server, tmp_path / "pod")
    try:
        email = f"{slug}.admin@example.com"
        hand_over_admin(server, email, admin_username(email))
        driver = Driver(
            {"url": "127.0.0.1", "port": server.port, "scheme": "http", "login_id": email, "password": PASSWORD}
        )
        driver.login()
        _fill(driver, slug, "drill", posts=6, files=2)
        backup = _back_up(plane, ws_id)
    finally:
        server.stop()
    assert backup["posts"] is not None and backup["posts"] >= 12
    swept = _sweep(ws_id)

    ok = drills.drill(get_settings(), uuid.UUID(backup["id"]), "test")
    assert ok.outcome is DrillOutcome.ok, ok.problems
    assert ok.posts_restored == backup["posts"]
    [scratch] = _scratch_names(plane, backup["id"])
    assert scratch and scratch.startswith("ws_") and scratch != workspace_names("test", ws_id).pooled_database
    assert not plane.database_exists(scratch) and not plane.role_exists(scratch), "the scratch database is dropped"
    assert _sweep(ws_id) == swept

    where = _parts(plane, backup["id"])["database"]["location"]
    s3 = boto3.client("s3")
    body = bytearray(s3.get_object(Bucket=where["bucket"], Key=where["key"])["Body"].read())
    body[len(body) // 2] ^= 0x01
    s3.put_object(
        Bucket=where["bucket"],
        Key=where["key"],
        Body=bytes(body),
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=where["kms_key_arn"],
    )
    operator = plane.staff_headers(Role.operator)
    asked = plane.api.post(f"/api/v1/backups/{backup['id']}/drills", headers=operator)
    assert asked.status_code == 202, asked.text
    found: list[dict[str, Any]] = []

    def drilled_twice() -> bool:
        response = plane.api.get(f"/api/v1/backups/{backup['id']}/drills", headers=operator)
        assert response.status_code == 200, response.text
        found[:] = response.json()["items"]
        return len(found) == 2

    wait_until(lambda: f"the drill asked for\n{plane.worker_logs()}", drilled_twice, timeout=120)
    corrupt = found[0]
    assert corrupt["outcome"] == "corrupt" and corrupt["posts_restored"] is None
    assert corrupt["problems"] == [f"backup object {where['key']} fails its SHA-256 check"]
    assert _scratch_names(plane, backup["id"]) == [scratch, None]  # the corrupt part was not restored
    assert _sweep(ws_id) == swept


def test_a_silo_backup_drills_ok_in_a_scratch_instance_that_is_gone_afterwards(plane: Plane) -> None:
    ws_id, _ = _provision(plane, Tier.enterprise, Lifecycle.active)
    backup = _back_up(plane, ws_id)
    snapshot = _parts(plane, backup["id"])["database"]["location"]
    assert snapshot["rds_snapshot"] and snapshot["workspace_id"] == str(ws_id)
    swept = _sweep(ws_id)
    rds = boto3.client("rds")
    instances_before = {i["DBInstanceIdentifier"] for i in rds.describe_db_instances()["DBInstances"]}

    ok = drills.drill(get_settings(), uuid.UUID(backup["id"]), "test")
    assert ok.outcome is DrillOutcome.ok, ok.problems
    assert ok.problems == [] and ok.posts_restored is None  # no data behind moto's RDS endpoints
    [scratch] = _scratch_names(plane, backup["id"])
    assert scratch and scratch.startswith(f"{workspace_names('test', ws_id).rds_instance}-drill-")
    instances = rds.describe_db_instances()["DBInstances"]
    assert {i["DBInstanceIdentifier"] for i in instances} == instances_before, "the scratch instance is deleted"
    assert not [i for i in instances if TAG_DRILL_OF in tags_from_list(i.get("TagList") or [])]
    snapshots = rds.describe_db_snapshots()["DBSnapshots"]
    assert not [s for s in snapshots if s["DBInstanceIdentifier"] == scratch], "deleted with no final snapshot"
    assert _sweep(ws_id) == swept


def test_a_backup_of_a_database_no_server_initialised_drills_ok(plane: Plane) -> None:
    """No Pod ran for this workspace: its database is empty, the backup records no post count, and its drill checks
    that the dump restores (there is no schema to expect)."""
    ws_id, _ = _provision(plane, Tier.professional, Lifecycle.trialing)
    backup = _back_up(plane, ws_id)
    assert backup["posts"] is None
    drilled = drills.drill(get_settings(), uuid.UUID(backup["id"]), "test")
    assert drilled.outcome is DrillOutcome.ok and drilled.problems == [], drilled.problems
    assert _scratch_names(plane, backup["id"])[-1] is not None, "the dump was restored into a scratch database"
