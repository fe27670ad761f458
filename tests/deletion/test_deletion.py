"""Delayed deletion on the local runtime with real workers: deleting stops the server and schedules the purge
(30 days, 7 for a trial); cancelling within the grace period brings the workspace back intact; once the clock passes
the purge date everything is torn down (the leak sweep finds nothing). Purging earlier is an operator action with a
reason."""

from __future__ import annotations

import functools
import time
import uuid
from datetime import datetime, timedelta

import pytest

from control_plane.core.authz import Role
from control_plane.core.clock import utcnow
from control_plane.core.settings import get_settings
from control_plane.providers.factory import get_providers
from control_plane.reconciler import records
from control_plane.reconciler.queue import workspace_lock
from control_plane.reconciler.tasks import RESYNC_TASK
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Tier
from tests.deletion.conftest import DeletionPlane, serving
from tests.reconciler.conftest import FAST_ENV
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

RESYNC_SECONDS = int(FAST_ENV["CANOPY_RECONCILE_RESYNC_SECONDS"])


def _close(when: str | datetime | None, expected: datetime, slack: timedelta = timedelta(minutes=5)) -> bool:
    assert when is not None
    moment = datetime.fromisoformat(when) if isinstance(when, str) else when
    return abs(moment - expected) < slack


def _audit(deleting: DeletionPlane, workspace_id: uuid.UUID) -> list[dict[str, object]]:
    found = deleting.plane.as_operator("GET", f"/api/v1/audit?target_id={workspace_id}")
    assert found.status_code == 200, found.text
    return list(reversed(found.json()["items"]))


def _final_backup(deleting: DeletionPlane, workspace_id: uuid.UUID, requested_at: datetime) -> dict[str, object]:
    """The final backup of the deletion requested at ``requested_at``: completed, kept 90 days."""
    listed = deleting.plane.as_operator("GET", f"/api/v1/workspaces/{workspace_id}/backups")
    assert listed.status_code == 200, listed.text
    final = next(b for b in listed.json()["items"] if b["kind"] == "final")  # newest first
    assert final["state"] == "completed" and final["size_bytes"] > 0, final
    assert _close(final["keep_until"], requested_at + timedelta(days=90))
    return dict(final)


def _quiet_since(deleting: DeletionPlane, workspace_id: uuid.UUID, since: float) -> bool:
    """Whether two periodic resyncs were deferred after ``since`` (epoch seconds; procrastinate keeps the latest
    defer, and the test plane's resync runs every 2 s) and neither a resync nor a reconcile of the workspace is
    waiting or running."""
    with deleting.plane.admin() as conn:
        latest = conn.execute(
            "SELECT max(defer_timestamp) FROM procrastinate_periodic_defers WHERE task_name = %s", [RESYNC_TASK]
        ).fetchone()
        running = conn.execute(
            "SELECT count(*) FROM procrastinate_jobs "
            "WHERE (task_name = %s OR lock = %s) AND status IN ('todo', 'doing')",
            [RESYNC_TASK, workspace_lock(workspace_id)],
        ).fetchone()
    assert latest is not None and running is not None
    return latest[0] is not None and latest[0] >= since + 2 * RESYNC_SECONDS and int(running[0]) == 0


def _gone(deleting: DeletionPlane, workspace_id: uuid.UUID) -> None:
    """Nothing of the workspace is left (the leak sweep finds nothing): database, login role, files and runtime
    directory, server."""
    plane = deleting.plane
    snap = records.load(workspace_id)
    assert snap is not None
    assert get_providers(get_settings(), snap.spec.tier).leftovers(snap.spec, snap.outputs) == []
    name = f"ws_{workspace_id.hex[:12]}"
    assert not plane.database_exists(name) and not plane.role_exists(name)
    assert not (plane.state_dir.resolve() / "workspaces" / str(workspace_id)).exists()
    assert not deleting.server_up(workspace_id)


def test_delete_cancel_within_the_grace_period_then_purge_when_due(deleting: DeletionPlane) -> None:
    plane = deleting.plane
    slug = f"regret-{uuid.uuid4().hex[:6]}"
    ws_id = deleting.workspace(slug)
    driver = deleting.driver(ws_id)
    team = driver.teams.get_team_by_name(slug)
    channel = driver.channels.get_channel_by_name(team["id"], "town-square")
    posts = [{"channel_id": channel["id"], "message": f"keep me {i}"} for i in range(5)]
    posted = [driver.posts.create_post(post)["id"] for post in posts]

    # Deleting schedules it: the server stops, the data stays, the purge is 7 days away (a trial).
    deleted = deleting.call(ws_id, "DELETE")
    assert deleted.status_code == 202, deleted.text
    body = deleted.json()
    assert (body["lifecycle_state"], body["resume_state"]) == ("pending_deletion", "trialing")
    assert _close(body["purge_after"], utcnow() + timedelta(days=7))
    ws = deleting.stopped(ws_id)
    assert plane.database_exists(f"ws_{ws_id.hex[:12]}")
    # Stopped and backed up, it waits for its purge date: the periodic resyncs leave it alone.
    for _ in range(2):  # the first round lets a resync that came before the stop finish
        last_reconciled = plane.row(ws_id).last_reconciled_at
        since = time.time()
        wait_until("two more resyncs", functools.partial(_quiet_since, deleting, ws_id, since), timeout=30)
    assert plane.row(ws_id).last_reconciled_at == last_reconciled
    shown = deleting.call(ws_id, "GET").json()
    assert shown["purge_after"] == body["purge_after"] and shown["url"] == ws.endpoint_url

    # Cancelled within the grace period (a day later): back to the trial, served again, every post there.
    deleting.advance(timedelta(days=1))
    cancelled = deleting.call(ws_id, "POST", "/cancel-deletion")
    assert cancelled.status_code == 202, cancelled.text
    assert (cancelled.json()["lifecycle_state"], cancelled.json()["purge_after"]) == ("trialing", None)
    plane.wait_for(ws_id, serving)
    driver = deleting.driver(ws_id)
    kept = driver.posts.get_posts_for_channel(channel["id"])["posts"]
    assert set(posted) <= set(kept) and {kept[p]["message"] for p in posted} == {f"keep me {i}" for i in range(5)}
    assert deleting.call(ws_id, "POST", "/cancel-deletion").status_code == 409  # nothing to cancel now

    # An export made meanwhile: its archive goes with the purge (only the final backup outlives the workspace).
    export = deleting.call(ws_id, "POST", "/exports")
    assert export.status_code == 202, export.text
    export_path = f"/exports/{export.json()['id']}"
    wait_until(
        "the export", lambda: deleting.call(ws_id, "GET", export_path).json()["state"] == "completed", timeout=60
    )
    archive = plane.state_dir.resolve() / "exports" / str(ws_id) / f"{export.json()['id']}.zip"
    assert archive.exists()

    # Deleted again, and the clock passes the purge date: torn down, nothing left.
    posted.append(driver.posts.create_post({"channel_id": channel["id"], "message": "after the cancel"})["id"])
    requested_at = utcnow()
    assert deleting.call(ws_id, "DELETE").status_code == 202
    deleting.stopped(ws_id)
    deleting.advance(timedelta(days=7, minutes=1))
    ws = plane.wait_state(ws_id, Lifecycle.deleted, timeout=90)
    assert ws.deleted_at is not None and ws.last_error is None
    _gone(deleting, ws_id)
    assert not archive.exists()
    assert deleting.call(ws_id, "GET", export_path).json()["state"] == "expired"
    final = _final_backup(deleting, ws_id, requested_at)  # this deletion's, with the post made after the cancel
    assert final["posts"] is not None and int(str(final["posts"])) >= len(posted)
    actions = [entry["action"] for entry in _audit(deleting, ws_id)]
    assert actions[-3:] == ["workspace.pending_deletion", "workspace.deletion_cancelled", "workspace.pending_deletion"]
    refused = deleting.call(ws_id, "POST", "/cancel-deletion")
    assert refused.status_code == 409 and refused.json()["current_state"] == "deleted", refused.text


def test_an_operator_purges_earlier_with_a_reason(deleting: DeletionPlane) -> None:
    plane = deleting.plane
    ws_id = deleting.workspace(f"purge-{uuid.uuid4().hex[:6]}", Tier.enterprise)

    requested_at = utcnow()
    deleted = deleting.call(ws_id, "DELETE")
    assert deleted.status_code == 202, deleted.text
    assert (deleted.json()["resume_state"], deleted.json()["lifecycle_state"]) == ("active", "pending_deletion")
    assert _close(deleted.json()["purge_after"], utcnow() + timedelta(days=30))
    deleting.stopped(ws_id)

    # Another organization's owner sees nothing; the owner may not purge; a purge needs a reason.
    stranger = deleting.workspace(f"other-{uuid.uuid4().hex[:6]}")
    assert deleting.call(ws_id, "POST", "/cancel-deletion", headers=plane.owner_headers[stranger]).status_code == 404
    owner_purge = deleting.call(ws_id, "POST", "/purge", json={"reason": "mine"})
    assert owner_purge.status_code == 403, owner_purge.text
    operator = plane.staff_headers(Role.operator)
    for body in ({}, {"reason": ""}, {"reason": "   "}):
        refused = deleting.call(ws_id, "POST", "/purge", json=body, headers=operator)
        assert refused.status_code == 422 and refused.headers["content-type"].startswith("application/problem+json")
    assert deleting.call(stranger, "POST", "/purge", json={"reason": "x"}, headers=operator).status_code == 409

    purged = deleting.call(ws_id, "POST", "/purge", json={"reason": "legal request #42"}, headers=operator)
    assert purged.status_code == 202, purged.text
    assert _close(purged.json()["purge_after"], utcnow())
    ws = plane.wait_state(ws_id, Lifecycle.deleted, timeout=90)
    assert ws.last_error is None and ws.deleted_at is not None
    _gone(deleting, ws_id)
    _final_backup(deleting, ws_id, requested_at)
    entry = next(e for e in reversed(_audit(deleting, ws_id)) if e["action"] == "workspace.purge")
    assert isinstance(entry["after"], dict) and entry["after"]["reason"] == "legal request #42"
    assert "(operator)" in str(entry["actor"])
    assert deleting.call(ws_id, "POST", "/cancel-deletion").status_code == 409
