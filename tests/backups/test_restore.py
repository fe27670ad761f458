"""Backups and restores end to end on the local runtime: posts and files written with ``mattermostdriver``, a
backup, more posts, then a restore into a clone and one in place, each checked against the backup through the
restored server's own API (every post, every file byte for byte)."""

from __future__ import annotations

import os
import signal
import uuid
from typing import Any

import httpx
import psycopg
from mattermostdriver import Driver
from mattermostdriver.exceptions import ResourceNotFound

from control_plane.workspaces.lifecycle import Lifecycle
from tests.backups.conftest import BackupPlane, audit_actions
from tests.waiting import wait_until

CHANNELS = ("town-square", "ops")


def _login(slug: str) -> str:
    return f"{slug}.admin@example.com"


def _fill(driver: Driver, slug: str, label: str, posts: int, files: int) -> dict[str, bytes]:
    """``posts`` posts in each channel and ``files`` more, each with a file; answers the files' bytes by id."""
    team = driver.teams.get_team_by_name(slug)
    try:
        ops = driver.channels.get_channel_by_name_and_team_name(slug, "ops")
    except ResourceNotFound:
        ops = driver.channels.create_channel({"team_id": team["id"], "name": "ops", "display_name": "Ops", "type": "O"})
    town = driver.channels.get_channel_by_name_and_team_name(slug, "town-square")
    written: dict[str, bytes] = {}
    for index in range(posts):
        for channel in (town, ops):
            driver.posts.create_post({"channel_id": channel["id"], "message": f"{label} {index} in {channel['name']}"})
    for index in range(files):
        content = os.urandom(1000 + 70_000 * index)
        upload = driver.files.upload_file(ops["id"], {"files": (f"{label}-{index}.bin", content)})
        file_id = upload["file_infos"][0]["id"]
        driver.posts.create_post({"channel_id": ops["id"], "message": f"{label} file {index}", "file_ids": [file_id]})
        written[file_id] = content
    return written


def _posts(driver: Driver, slug: str) -> dict[str, tuple[str, str, tuple[str, ...], int]]:
    """Every post of the team's two channels: id -> (channel, message, file ids, creation time)."""
    found = {}
    for name in CHANNELS:
        channel = driver.channels.get_channel_by_name_and_team_name(slug, name)
        page = driver.posts.get_posts_for_channel(channel["id"], params={"per_page": 200})
        assert len(page["order"]) < 200
        for post_id, post in page["posts"].items():
            found[post_id] = (name, post["message"], tuple(post.get("file_ids") or ()), post["create_at"])
    return found


def _file(driver: Driver, file_id: str) -> bytes:
    response = driver.files.get_file(file_id)
    assert isinstance(response.content, bytes)
    return response.content


def _post_count(backing: BackupPlane, workspace_id: uuid.UUID) -> int:
    name = f"ws_{workspace_id.hex[:12]}"
    with psycopg.connect(backing.plane.url.rsplit("/", 1)[0] + f"/{name}") as conn:
        row = conn.execute("SELECT count(*) FROM posts").fetchone()
    assert row is not None
    return int(row[0])


def _state_of_backup(backing: BackupPlane, slug: str, workspace_id: uuid.UUID) -> dict[str, Any]:
    """Fill the workspace, back it up; answers what the backup holds (posts by id, files by id) and the backup."""
    driver = backing.driver(workspace_id, _login(slug))
    files = _fill(driver, slug, "before", posts=15, files=3)
    posts = _posts(driver, slug)
    count = _post_count(backing, workspace_id)
    backup = backing.back_up(workspace_id)
    assert (backup["posts"], backup["files"]) == (count, 3)
    assert [p["name"] for p in backup["parts"]] == ["database", "files"]
    assert backup["size_bytes"] == sum(p["size"] for p in backup["parts"]) and len(backup["sha256"]) == 64
    assert backup["duration_seconds"] is not None and backup["kind"] == "manual"
    later = _fill(driver, slug, "after", posts=5, files=1)
    assert len(_posts(driver, slug)) == len(posts) + 2 * 5 + 1
    return {"posts": posts, "files": files, "later": later, "backup": backup}


def _check_holds(driver: Driver, slug: str, expected: dict[str, Any]) -> None:
    assert _posts(driver, slug) == expected["posts"]
    for file_id, content in expected["files"].items():
        assert _file(driver, file_id) == content
    for file_id in expected["later"]:
        try:
            driver.files.get_file(file_id)
        except ResourceNotFound:
            continue
        raise AssertionError(f"file {file_id}, uploaded after the backup, is still there")


def test_a_clone_holds_exactly_the_backup(backing: BackupPlane) -> None:
    slug = f"src-{uuid.uuid4().hex[:6]}"
    workspace_id = backing.workspace(slug)
    expected = _state_of_backup(backing, slug, workspace_id)
    backup_id = expected["backup"]["id"]

    clone_slug = f"clone-{uuid.uuid4().hex[:6]}"
    body = {"mode": "clone", "slug": clone_slug, "display_name": "Yesterday"}
    asked = backing.call(workspace_id, f"/{backup_id}/restore", "POST", json=body)
    assert asked.status_code == 202, asked.text
    clone_id = uuid.UUID(asked.json()["target_workspace_id"])
    backing.plane.workspace_ids.append(clone_id)
    assert clone_id != workspace_id and asked.json()["mode"] == "clone"
    backing.serving(clone_id)
    restore = backing.wait_restore(workspace_id, backup_id)
    assert restore["state"] == "completed", restore
    assert audit_actions(restore["id"]) == [
        "workspace_restore.create",
        "workspace_restore.start",
        "workspace_restore.complete",
    ]

    clone = backing.plane.row(clone_id)
    source = backing.plane.row(workspace_id)
    assert (clone.organization_id, clone.tier, clone.slug) == (source.organization_id, source.tier, clone_slug)
    # The requester (the owner) logs in to the clone; its team carries the clone's slug.
    driver = backing.driver(clone_id, _login(slug))
    assert driver.teams.get_team_by_name(clone_slug)["display_name"] == "Yesterday"
    _check_holds(driver, clone_slug, expected)
    # The source kept everything, later posts included.
    source_driver = backing.driver(workspace_id, _login(slug))
    assert len(_posts(source_driver, slug)) == len(expected["posts"]) + 11


def test_in_place_the_workspace_goes_back_to_the_backup(backing: BackupPlane) -> None:
    slug = f"inplace-{uuid.uuid4().hex[:6]}"
    workspace_id = backing.workspace(slug)
    expected = _state_of_backup(backing, slug, workspace_id)
    backup_id = expected["backup"]["id"]
    generation = backing.plane.row(workspace_id).generation

    # No worker: the workspace waits in ``restoring``; its address answers 503 with Retry-After at once.
    backing.plane.stop_workers()
    asked = backing.call(workspace_id, f"/{backup_id}/restore", "POST", json={"mode": "in_place", "confirm": slug})
    assert asked.status_code == 202, asked.text
    row = backing.plane.row(workspace_id)
    assert (row.lifecycle_state, row.resume_state) == (Lifecycle.restoring, Lifecycle.trialing)
    refused = backing.plane.api.get(f"/w/{slug}/api/v4/system/ping")
    assert refused.status_code == 503 and refused.headers["retry-after"], refused.text
    assert refused.json()["type"].endswith("/workspace-restoring")
    assert backing.call(workspace_id, method="POST").status_code == 409  # no backup of a workspace being restored

    backing.plane.start_worker()
    restore = backing.wait_restore(workspace_id, backup_id)
    assert restore["state"] == "completed" and restore["target_workspace_id"] == str(workspace_id), restore
    backing.serving(workspace_id)
    row = backing.plane.row(workspace_id)
    assert row.resume_state is None and row.generation > generation
    assert audit_actions(str(workspace_id))[-2:] == ["workspace.restore", "workspace.restored"]
    _check_holds(backing.driver(workspace_id, _login(slug)), slug, expected)
    served = backing.plane.api.get(f"/w/{slug}/api/v4/system/ping")
    assert served.status_code == 200, served.text


def test_a_corrupt_backup_leaves_the_workspace_as_it_was(backing: BackupPlane) -> None:
    slug = f"corrupt-{uuid.uuid4().hex[:6]}"
    workspace_id = backing.workspace(slug)
    driver = backing.driver(workspace_id, _login(slug))
    _fill(driver, slug, "kept", posts=3, files=1)
    backup = backing.back_up(workspace_id)
    before = _posts(driver, slug)
    part = backing.plane.state_dir.resolve() / "backups" / str(workspace_id) / backup["id"] / "database.part"
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0x01
    part.write_bytes(bytes(data))

    asked = backing.call(workspace_id, f"/{backup['id']}/restore", "POST", json={"mode": "in_place", "confirm": slug})
    assert asked.status_code == 202, asked.text
    restore = backing.wait_restore(workspace_id, backup["id"])
    assert restore["state"] == "failed" and "CorruptPart: part database" in restore["error"], restore
    backing.serving(workspace_id)
    assert _posts(backing.driver(workspace_id, _login(slug)), slug) == before


def test_waiting_for_a_restored_server_never_hangs(backing: BackupPlane) -> None:
    """While restoring, the address answers 503 at once, even before the server is stopped."""
    slug = f"proxy-{uuid.uuid4().hex[:6]}"
    workspace_id = backing.workspace(slug)
    backup = backing.back_up(workspace_id)
    backing.plane.stop_workers()
    asked = backing.call(workspace_id, f"/{backup['id']}/restore", "POST", json={"mode": "in_place", "confirm": slug})
    assert asked.status_code == 202, asked.text
    with httpx.Client(timeout=5) as client:
        port = backing.plane.row(workspace_id).outputs["port"]
        assert client.get(f"http://127.0.0.1:{port}/api/v4/system/ping").status_code == 200  # not stopped yet
    assert backing.plane.api.get(f"/w/{slug}/api/v4/system/ping").status_code == 503
    backing.plane.start_worker()
    assert backing.wait_restore(workspace_id, backup["id"])["state"] == "completed"
    backing.serving(workspace_id)


def test_a_worker_killed_mid_restore_in_place_leaves_it_to_the_next(backing: BackupPlane) -> None:
    """Killed with the database restored and the files not yet: the next worker restores again from scratch."""
    slug = f"crash-{uuid.uuid4().hex[:6]}"
    workspace_id = backing.workspace(slug)
    expected = _state_of_backup(backing, slug, workspace_id)
    backup_id = expected["backup"]["id"]
    backing.plane.stop_workers()
    doomed = backing.plane.start_worker(concurrency=1, CANOPY_FAULT_PAUSE_AFTER_STEP="restore:database")
    asked = backing.call(workspace_id, f"/{backup_id}/restore", "POST", json={"mode": "in_place", "confirm": slug})
    assert asked.status_code == 202, asked.text
    wait_until(
        lambda: f"the pause mid-restore\n{backing.plane.worker_logs()}",
        lambda: "pausing after restore:database" in backing.plane.worker_logs(),
        120,
    )
    assert backing.call(workspace_id, f"/{backup_id}/restore").json()["state"] == "running"

    backing.plane.start_worker()  # the paused job's lock keeps it off this workspace until recovery
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    assert backing.wait_restore(workspace_id, backup_id)["state"] == "completed"
    backing.serving(workspace_id)
    _check_holds(backing.driver(workspace_id, _login(slug)), slug, expected)
