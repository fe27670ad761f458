"""Moving a Professional workspace to an Enterprise silo on the local runtime (the real workspace server): posts in
several channels and files written with ``mattermostdriver`` are all found, byte for byte, in the new workspace at the
same address, where the owner is still the system admin; the old one is pending deletion. And the refusals."""

from __future__ import annotations

import os
import signal
import uuid
from datetime import datetime, timedelta
from typing import Any

from mattermostdriver import Driver
from sqlalchemy import select

from control_plane.core import db as core_db
from control_plane.core.authz import Role
from control_plane.core.clock import utcnow
from control_plane.mail.models import OutboxMail
from control_plane.subscriptions import repository as subscriptions
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Tier, Workspace
from tests.backups.conftest import audit_actions
from tests.moves.conftest import MovePlane
from tests.waiting import wait_until

CHANNELS = ("town-square", "ops", "sales-floor")
WINDOW_LEAD_SECONDS = 15
"""How far ahead the tested window starts: time enough to write before it."""


def _login(slug: str) -> str:
    return f"{slug}.admin@example.com"


def _fill(driver: Driver, slug: str) -> dict[str, bytes]:
    """Posts in three channels and files in two; answers the files' bytes by id."""
    team = driver.teams.get_team_by_name(slug)
    channels = [driver.channels.get_channel_by_name_and_team_name(slug, "town-square")]
    for name in CHANNELS[1:]:
        body = {"team_id": team["id"], "name": name, "display_name": name.title(), "type": "O"}
        channels.append(driver.channels.create_channel(body))
    files: dict[str, bytes] = {}
    for index in range(6):
        for channel in channels:
            driver.posts.create_post({"channel_id": channel["id"], "message": f"post {index} in {channel['name']}"})
    for index, channel in enumerate(channels[1:] * 2):
        content = os.urandom(500 + 40_000 * index)
        upload = driver.files.upload_file(channel["id"], {"files": (f"file-{index}.bin", content)})
        file_id = upload["file_infos"][0]["id"]
        driver.posts.create_post({"channel_id": channel["id"], "message": f"file {index}", "file_ids": [file_id]})
        files[file_id] = content
    return files


def _write(driver: Driver, slug: str, label: str) -> dict[str, bytes]:
    """One more post and one more file in ``ops``."""
    ops = driver.channels.get_channel_by_name_and_team_name(slug, "ops")
    driver.posts.create_post({"channel_id": ops["id"], "message": label})
    content = os.urandom(12_345)
    upload = driver.files.upload_file(ops["id"], {"files": ("late.bin", content)})
    file_id = upload["file_infos"][0]["id"]
    driver.posts.create_post({"channel_id": ops["id"], "message": f"{label}, a file", "file_ids": [file_id]})
    return {file_id: content}


def _posts(driver: Driver, slug: str) -> dict[str, tuple[str, str, tuple[str, ...]]]:
    """Every post of the team's channels: id -> (channel, message, file ids)."""
    found = {}
    for name in CHANNELS:
        channel = driver.channels.get_channel_by_name_and_team_name(slug, name)
        page = driver.posts.get_posts_for_channel(channel["id"], params={"per_page": 200})
        assert len(page["order"]) < 200
        for post_id, post in page["posts"].items():
            found[post_id] = (name, post["message"], tuple(post.get("file_ids") or ()))
    return found


def _mails_to(address: str) -> list[str]:
    with core_db.session_scope() as session:
        query = select(OutboxMail.subject).where(OutboxMail.to_address == address).order_by(OutboxMail.created_at)
        return list(session.scalars(query))


def _body(workspace_id: uuid.UUID, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "workspace_id": str(workspace_id),
        "downtime_start": utcnow().isoformat(),
        "downtime_minutes": 30,
    }
    return body | changes


def test_a_professional_workspace_moves_with_every_post_and_file(moving: MovePlane) -> None:
    slug = f"move-{uuid.uuid4().hex[:6]}"
    source_id = moving.workspace(slug)
    organization_id = moving.organization_of(source_id)
    driver = moving.driver(source_id, _login(slug))
    files = _fill(driver, slug)
    assert len(_posts(driver, slug)) >= 3 * 6 + 4 and len(files) == 4
    moving.sign_contract(organization_id)

    window = utcnow() + timedelta(seconds=WINDOW_LEAD_SECONDS)
    asked = moving.move(organization_id, _body(source_id, downtime_start=window.isoformat()))
    assert asked.status_code == 202, asked.text
    assert asked.json()["state"] == "scheduled" and asked.json()["slug"] == slug
    assert any("Scheduled downtime" in subject for subject in _mails_to(_login(slug)))
    # Writes up to the window are kept.
    files |= _write(driver, slug, "before the window")
    posts = _posts(driver, slug)
    assert moving.read_move(organization_id).json()["state"] == "scheduled"

    move = moving.wait_move(organization_id)
    assert move["state"] == "done", move
    assert [step["state"] for step in move["steps"]] == ["scheduled", "stopping", "copying", "cut_over", "done"]
    assert audit_actions(move["id"]) == [f"enterprise_move.{step['state']}" for step in move["steps"]]

    target_id = uuid.UUID(move["target_workspace_id"])
    moving.plane.workspace_ids.append(target_id)
    moving.plane.wait_for(target_id, lambda ws: ws.lifecycle_state == Lifecycle.active)
    target, source = moving.plane.row(target_id), moving.plane.row(source_id)
    assert (target.tier, target.slug, target.organization_id) == (Tier.enterprise, slug, organization_id)
    assert (source.lifecycle_state, source.slug) == (Lifecycle.pending_deletion, move["retired_slug"])
    assert source.purge_after is not None

    # The owner signs in to the new silo with the password they had: every post and file came along.
    moved = moving.driver(target_id, _login(slug))
    assert "system_admin" in moved.users.get_user("me")["roles"]
    assert _posts(moved, slug) == posts
    for file_id, content in files.items():
        assert moved.files.get_file(file_id).content == content
    # The customer's address serves the Enterprise workspace.
    some_post = next(iter(posts))
    headers = {"Authorization": f"Bearer {moved.client.token}"}
    served = moving.plane.api.get(f"/w/{slug}/api/v4/posts/{some_post}", headers=headers)
    assert served.status_code == 200 and served.json()["message"] == posts[some_post][1], served.text
    moving.plane.close_api()  # its proxy's pooled connections belong to this request's event loop
    assert any("now on Enterprise" in subject for subject in _mails_to(_login(slug)))
    # The Professional plan ends (a trial: at its end, with nothing to charge).
    with core_db.session_scope() as session:
        subscription = subscriptions.get(session, organization_id)
        assert subscription is not None and subscription.cancel_at == subscription.trial_ends_at


def test_who_may_move_and_what(moving: MovePlane) -> None:
    slug = f"refuse-{uuid.uuid4().hex[:6]}"
    workspace_id = moving.plane.create_workspace(slug)
    organization_id = moving.organization_of(workspace_id)
    other_id = moving.plane.create_workspace(f"other-{uuid.uuid4().hex[:6]}")
    owner = moving.plane.owner_headers[workspace_id]

    for headers in (owner, moving.plane.staff_headers(Role.operator), moving.plane.staff_headers(Role.support)):
        refused = moving.move(organization_id, _body(workspace_id), headers)
        assert refused.status_code == 403, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
    # Another organization's workspace, an unknown organization, another organization's move: 404.
    assert moving.move(organization_id, _body(other_id)).status_code == 404
    assert moving.move(uuid.uuid4(), _body(workspace_id)).status_code == 404
    assert moving.read_move(organization_id, moving.plane.owner_headers[other_id]).status_code == 404
    assert moving.read_move(organization_id, owner).status_code == 404  # no move yet
    # Without a contract: 409.
    refused = moving.move(organization_id, _body(workspace_id))
    assert refused.status_code == 409 and refused.json()["type"].endswith("/contract-required"), refused.text
    # An Enterprise workspace: 409.
    silo_id = moving.plane.create_workspace(f"silo-{uuid.uuid4().hex[:6]}", tier=Tier.enterprise)
    refused = moving.move(moving.organization_of(silo_id), _body(silo_id))
    assert refused.status_code == 409 and refused.json()["type"].endswith("/already-enterprise"), refused.text
    # Bad input: 422.
    past = (utcnow() - timedelta(hours=1)).isoformat()
    for bad in (
        _body(workspace_id, downtime_minutes=0),
        _body(workspace_id, downtime_minutes=100_000),
        _body(workspace_id, downtime_start="2026-12-24T22:00:00"),
        _body(workspace_id, downtime_start=past),
        _body(workspace_id, downtime_start="9999-12-31T23:59:59+00:00"),
        _body(workspace_id, region="EU West!"),
        _body(workspace_id) | {"workspace_id": "not-a-uuid"},
        _body(workspace_id, surprise=True),
        {"downtime_minutes": 30},
    ):
        refused = moving.move(organization_id, bad)
        assert refused.status_code == 422, (bad, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
    assert moving.read_move(organization_id).status_code == 404  # nothing was scheduled


def test_a_move_whose_worker_is_killed_mid_copy_ends_once(moving: MovePlane) -> None:
    """SIGKILL the worker right after the Enterprise workspace was made: another worker finishes the move (the
    stalled job is taken again from the move's row), with one Enterprise workspace and each step recorded once."""
    slug = f"crash-{uuid.uuid4().hex[:6]}"
    source_id = moving.workspace(slug)
    organization_id = moving.organization_of(source_id)
    driver = moving.driver(source_id, _login(slug))
    files = _fill(driver, slug)
    posts = _posts(driver, slug)
    moving.sign_contract(organization_id)
    moving.plane.stop_workers()
    doomed = moving.plane.start_worker(CANOPY_FAULT_PAUSE_AFTER_STEP="enterprise_move:copying")
    assert moving.move(organization_id, _body(source_id)).status_code == 202

    wait_until(
        lambda: moving.plane.worker_logs(),
        lambda: "fault injection: pausing after enterprise_move:copying" in moving.plane.worker_logs(tail=10_000),
        180,
    )
    assert moving.read_move(organization_id).json()["state"] == "copying"
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    moving.plane.start_worker()

    move = moving.wait_move(organization_id)
    assert move["state"] == "done", move
    assert [step["state"] for step in move["steps"]] == ["scheduled", "stopping", "copying", "cut_over", "done"]
    with core_db.session_scope() as session:
        query = select(Workspace.id).where(
            Workspace.organization_id == organization_id, Workspace.tier == Tier.enterprise
        )
        assert list(session.scalars(query)) == [uuid.UUID(move["target_workspace_id"])]
    moving.plane.workspace_ids.append(uuid.UUID(move["target_workspace_id"]))
    moved = moving.driver(uuid.UUID(move["target_workspace_id"]), _login(slug))
    assert _posts(moved, slug) == posts
    assert [moved.files.get_file(file_id).content for file_id in files] == list(files.values())


def test_a_workspace_that_cannot_move_now_is_a_conflict(moving: MovePlane) -> None:
    workspace_id = moving.plane.create_workspace(f"early-{uuid.uuid4().hex[:6]}")
    organization_id = moving.organization_of(workspace_id)
    moving.sign_contract(organization_id)
    refused = moving.move(organization_id, _body(workspace_id))  # still provisioning: nothing to copy yet
    assert refused.status_code == 409 and refused.json()["type"].endswith("/workspace-not-movable"), refused.text

    slug = f"twice-{uuid.uuid4().hex[:6]}"
    serving_id = moving.workspace(slug)
    organization_id = moving.organization_of(serving_id)
    moving.sign_contract(organization_id)
    later = (utcnow() + timedelta(days=7)).isoformat()
    first = moving.move(organization_id, _body(serving_id, downtime_start=later))
    assert first.status_code == 202, first.text
    again = moving.move(organization_id, _body(serving_id, downtime_start=later))
    assert again.status_code == 409 and again.json()["move_id"] == first.json()["id"], again.text
    owner = moving.plane.owner_headers[serving_id]
    shown = moving.read_move(organization_id, owner)  # the organization's owner follows the move
    assert shown.status_code == 200 and shown.json()["state"] == "scheduled", shown.text
    ends = datetime.fromisoformat(shown.json()["downtime_end"])
    assert ends == datetime.fromisoformat(later) + timedelta(minutes=30)


def test_a_failed_copy_gives_the_professional_workspace_its_address_back(moving: MovePlane) -> None:
    """The final backup is damaged before the silo restores it: the move fails with the reason, the silo is
    deleted, and the Professional workspace runs again at its address with everything it had."""
    slug = f"undo-{uuid.uuid4().hex[:6]}"
    source_id = moving.workspace(slug)
    organization_id = moving.organization_of(source_id)
    files = _fill(moving.driver(source_id, _login(slug)), slug)
    posts = _posts(moving.driver(source_id, _login(slug)), slug)
    moving.sign_contract(organization_id)
    moving.plane.stop_workers()
    # One job at a time: the paused move holds the only slot, so the silo's restore waits for the damage.
    doomed = moving.plane.start_worker(concurrency=1, CANOPY_FAULT_PAUSE_AFTER_STEP="enterprise_move:copying")
    assert moving.move(organization_id, _body(source_id)).status_code == 202
    wait_until(
        lambda: moving.plane.worker_logs(),
        lambda: "fault injection: pausing after enterprise_move:copying" in moving.plane.worker_logs(tail=10_000),
        180,
    )
    move = moving.read_move(organization_id).json()
    waiting = moving.plane.api.get(f"/w/{slug}/api/v4/system/ping")  # in the window: 503 at once, not a 404
    assert waiting.status_code == 503 and waiting.json()["type"].endswith("/workspace-moving"), waiting.text
    assert waiting.headers["retry-after"] == "30"
    part = moving.plane.state_dir.resolve() / "backups" / str(source_id) / move["backup_id"] / "database.part"
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0x01
    part.write_bytes(bytes(data))
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    moving.plane.start_worker()

    move = moving.wait_move(organization_id)
    assert move["state"] == "failed" and "CorruptPart" in move["error"], move
    target = moving.plane.row(uuid.UUID(move["target_workspace_id"]))
    assert target.lifecycle_state == Lifecycle.pending_deletion and target.slug != slug
    moving.serving(source_id)
    assert moving.plane.row(source_id).slug == slug
    driver = moving.driver(source_id, _login(slug))
    assert _posts(driver, slug) == posts
    assert [driver.files.get_file(file_id).content for file_id in files] == list(files.values())
    assert moving.plane.api.get(f"/w/{slug}/api/v4/system/ping").status_code == 200
    moving.plane.close_api()  # its proxy's pooled connections belong to this request's event loop
    assert any("delayed" in subject for subject in _mails_to(_login(slug)))
