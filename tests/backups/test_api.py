"""The backup and restore routes: who may do what, bad input, conflicts, audit; and the final backup the deletion
reconcile takes."""

from __future__ import annotations

import uuid
from datetime import timedelta

from control_plane.backups import service
from control_plane.backups.models import BackupState
from control_plane.core.authz import Role
from control_plane.core.clock import utcnow
from tests.backups.conftest import BackupPlane, audit_actions


def test_routes_answer_who_may_what_and_refuse_bad_input(backing: BackupPlane) -> None:
    slug = f"api-{uuid.uuid4().hex[:6]}"
    workspace_id = backing.workspace(slug)
    backing.plane.stop_workers()
    other_id = backing.plane.create_workspace(f"other-{uuid.uuid4().hex[:6]}")  # provisioning: no worker
    other = backing.plane.owner_headers[other_id]

    # A workspace still provisioning has no data: 409.
    empty = backing.call(other_id, method="POST")
    assert empty.status_code == 409 and empty.json()["type"].endswith("/workspace-has-no-data"), empty.text

    backing.plane.start_worker()
    backup = backing.back_up(workspace_id)
    path = f"/{backup['id']}"
    assert audit_actions(backup["id"]) == ["workspace_backup.create", "workspace_backup.complete"]

    # Another organization's workspace and backup are 404, whatever the route.
    assert backing.call(workspace_id, headers=other).status_code == 404
    assert backing.call(workspace_id, path, headers=other).status_code == 404
    assert backing.call(other_id, path, headers=other).status_code == 404
    assert backing.call(workspace_id, method="POST", headers=other).status_code == 404
    steal = {"mode": "clone", "slug": f"steal-{uuid.uuid4().hex[:6]}"}
    assert backing.call(workspace_id, f"{path}/restore", "POST", headers=other, json=steal).status_code == 404
    assert backing.call(workspace_id, f"/{uuid.uuid4()}").status_code == 404
    assert backing.call(workspace_id, f"{path}/restore").status_code == 404  # never restored

    # Roles: support reads, billing does nothing here, an operator backs up.
    assert backing.call(workspace_id, headers=backing.plane.staff_headers(Role.support)).status_code == 200
    billing = backing.plane.member_headers(workspace_id, Role.billing)
    assert backing.call(workspace_id, headers=billing).status_code == 403
    assert backing.call(workspace_id, method="POST", headers=billing).status_code == 403
    listed = backing.call(workspace_id).json()["items"]
    assert [b["id"] for b in listed] == [backup["id"]] and "location" not in listed[0]["parts"][0]

    # Bad input: 422; a wrong confirmation or a taken slug: 409.
    for body in (
        {"mode": "sideways"},
        {"mode": "clone"},
        {"mode": "in_place"},
        {"mode": "in_place", "confirm": slug, "slug": "x"},
        {"mode": "clone", "slug": "Not A Slug!"},
        [],
    ):
        refused = backing.call(workspace_id, f"{path}/restore", "POST", json=body)
        assert refused.status_code == 422, (body, refused.text)
        assert refused.headers["content-type"].startswith("application/problem+json")
    wrong = backing.call(workspace_id, f"{path}/restore", "POST", json={"mode": "in_place", "confirm": "nope"})
    assert wrong.status_code == 409 and wrong.json()["type"].endswith("/confirmation-mismatch"), wrong.text
    taken = backing.call(workspace_id, f"{path}/restore", "POST", json={"mode": "clone", "slug": slug})
    assert taken.status_code == 409, taken.text
    assert backing.plane.row(workspace_id).lifecycle_state.value == "trialing"
    assert audit_actions(backup["id"]) == ["workspace_backup.create", "workspace_backup.complete"]

    # A clone an operator restores holds the backup's users only: staff never get an account in a customer's
    # workspace. The owner's clone makes the owner its admin, as signup does.
    operator = backing.plane.staff_headers(Role.operator)
    for headers, admin in ((operator, None), (backing.plane.owner_headers[workspace_id], f"{slug}.admin@example.com")):
        clone = {"mode": "clone", "slug": f"clone-{uuid.uuid4().hex[:6]}"}
        made = backing.call(workspace_id, f"{path}/restore", "POST", headers=headers, json=clone)
        assert made.status_code == 202, made.text
        assert backing.plane.row(uuid.UUID(made.json()["target_workspace_id"])).initial_admin_email == admin


def test_the_final_backup_is_taken_once_and_kept_90_days(backing: BackupPlane) -> None:
    workspace_id = backing.workspace(f"final-{uuid.uuid4().hex[:6]}")
    first = service.ensure_final_backup(workspace_id)
    assert first.state is BackupState.completed and first.error is None
    assert first.keep_until is not None
    assert abs(first.keep_until - (utcnow() + timedelta(days=90))) < timedelta(minutes=5)
    again = service.ensure_final_backup(workspace_id)
    assert again.backup_id == first.backup_id
    shown = backing.call(workspace_id, f"/{first.backup_id}").json()
    assert (shown["kind"], shown["state"], shown["requested_by"]) == ("final", "completed", "worker")
    assert audit_actions(str(first.backup_id)) == ["workspace_backup.create", "workspace_backup.complete"]
