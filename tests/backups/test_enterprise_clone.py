"""A clone of an Enterprise workspace's backup is a new silo: only sales and admins restore one (the owner and
operators get a 403 problem and nothing is made); the admin's clone holds the backup's users only."""

from __future__ import annotations

import uuid

from control_plane.core.authz import Role
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Tier
from tests.backups.conftest import BackupPlane


def test_only_sales_and_admins_clone_an_enterprise_workspace(backing: BackupPlane) -> None:
    plane = backing.plane
    if not plane.workers:
        plane.start_worker()
    workspace_id = plane.create_workspace(f"silo-{uuid.uuid4().hex[:6]}", Tier.enterprise)
    plane.wait_for(
        workspace_id,
        lambda ws: (
            ws.lifecycle_state == Lifecycle.active
            and any(c["type"] == "Available" and c["status"] == "True" for c in ws.conditions or [])
        ),
        120,
    )
    backup = backing.back_up(workspace_id)
    path = f"/{backup['id']}/restore"
    for headers in (plane.owner_headers[workspace_id], plane.staff_headers(Role.operator)):
        slug = f"clone-{uuid.uuid4().hex[:6]}"
        refused = backing.call(workspace_id, path, "POST", headers=headers, json={"mode": "clone", "slug": slug})
        assert refused.status_code == 403, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
    made = backing.call(
        workspace_id,
        path,
        "POST",
        headers=plane.staff_headers(Role.admin),
        json={"mode": "clone", "slug": f"clone-{uuid.uuid4().hex[:6]}"},
    )
    assert made.status_code == 202, made.text
    clone = plane.row(uuid.UUID(made.json()["target_workspace_id"]))
    assert clone.tier is Tier.enterprise and clone.initial_admin_email is None
