"""State races and abuse around restores and deletion: two in-place restores at once (one wins, the other is a 409),
and while a workspace is restored or pending deletion every action that does not fit is a 409 problem that changes
nothing."""

from __future__ import annotations

import threading
import uuid

import httpx

from control_plane.core.authz import Role
from control_plane.workspaces.lifecycle import Lifecycle
from tests.backups.conftest import BackupPlane


def conflict(answer: httpx.Response) -> str:
    assert answer.status_code == 409, (answer.request.method, answer.request.url, answer.text[:300])
    assert answer.headers["content-type"].startswith("application/problem+json")
    kind: str = answer.json()["type"].rsplit("/", 1)[-1]
    return kind


def test_restoring_and_pending_deletion_refuse_what_does_not_fit(backing: BackupPlane) -> None:
    restored_slug, deleted_slug = f"rr-{uuid.uuid4().hex[:6]}", f"rd-{uuid.uuid4().hex[:6]}"
    restored_id, deleted_id = backing.workspace(restored_slug), backing.workspace(deleted_slug)
    backup, final = backing.back_up(restored_id), backing.back_up(deleted_id)
    backing.plane.stop_workers()  # the restore stays queued and the deletion pending while the test probes them
    api, operator = backing.plane.api, backing.plane.staff_headers(Role.operator)
    owner = backing.plane.owner_headers[restored_id]
    restore = f"/{backup['id']}/restore"

    # Two in-place restores at once: one is accepted, the other refused.
    answers: list[httpx.Response] = []
    body = {"mode": "in_place", "confirm": restored_slug}
    racers = [
        threading.Thread(target=lambda: answers.append(backing.call(restored_id, restore, "POST", json=body)))
        for _ in range(2)
    ]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(60)
    assert sorted(a.status_code for a in answers) == [202, 409], [a.text for a in answers]
    assert backing.plane.row(restored_id).lifecycle_state == Lifecycle.restoring

    # While it is restored: no other restore in place, no backup, no deletion, no cancel, no purge, no hibernation.
    base = f"/api/v1/workspaces/{restored_id}"
    conflict(backing.call(restored_id, restore, "POST", json=body))
    assert conflict(backing.call(restored_id, method="POST")) == "workspace-has-no-data"
    conflict(api.delete(base, headers=owner))
    conflict(api.post(f"{base}/cancel-deletion", headers=owner))
    conflict(api.post(f"{base}/purge", json={"reason": "abuse"}, headers=operator))
    conflict(api.post(f"{base}/hibernate", headers=owner))
    conflict(api.post(f"{base}/wake", headers=owner))
    assert backing.plane.row(restored_id).lifecycle_state == Lifecycle.restoring

    # Pending deletion: no restore in place (a clone is how a deletion is regretted), no second deletion.
    deleted_owner = backing.plane.owner_headers[deleted_id]
    assert api.delete(f"/api/v1/workspaces/{deleted_id}", headers=deleted_owner).status_code == 202
    in_place = {"mode": "in_place", "confirm": deleted_slug}
    conflict(backing.call(deleted_id, f"/{final['id']}/restore", "POST", json=in_place))
    conflict(api.delete(f"/api/v1/workspaces/{deleted_id}", headers=deleted_owner))
    conflict(api.post(f"/api/v1/workspaces/{deleted_id}/hibernate", headers=deleted_owner))
    assert backing.plane.row(deleted_id).lifecycle_state == Lifecycle.pending_deletion

    # The workers come back: the accepted restore completes, the workspace serves again; the other is cancelled.
    backing.plane.start_worker()
    assert backing.wait_restore(restored_id, backup["id"])["state"] == "completed"
    backing.serving(restored_id)
    assert api.post(f"/api/v1/workspaces/{deleted_id}/cancel-deletion", headers=deleted_owner).status_code == 202
    backing.serving(deleted_id)
