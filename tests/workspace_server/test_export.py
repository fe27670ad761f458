"""``GET /api/v4/canopy/export``: the workspace as a Mattermost bulk-import archive, checked against Mattermost's rules
(:mod:`tests.mattermost_import`) and against what the test wrote through the API."""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.mattermost_import import Archive, check_archive
from tests.workspace_server.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, TEAM_NAME, Account, ServerProcess
from tests.workspace_server.wsclient import User, create_user, login, ok
from workspace_server.export import importable_team_name


def _export(server: ServerProcess) -> bytes:
    headers = {"Authorization": f"Bearer {server.control_token}"}
    with httpx.stream("GET", f"{server.base_url}/api/v4/canopy/export", headers=headers, timeout=60) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"] == "application/zip"
        return response.read()


def _post(user: User, channel_id: str, message: str, **extra: Any) -> dict[str, Any]:
    return ok(user.api.post("/posts", json={"channel_id": channel_id, "message": message, **extra}), 201)


def _upload(user: User, channel_id: str, name: str, content: bytes) -> str:
    files = {"files": (name, content, "application/octet-stream")}
    infos = ok(user.api.post("/files", data={"channel_id": channel_id}, files=files), 201)["file_infos"]
    return str(infos[0]["id"])


def _by_message(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {line["message"]: line for line in lines}


@pytest.fixture(scope="module")
def workspace(server: ServerProcess, admin: Account) -> dict[str, Any]:
    """A small workspace with one of everything an export carries; answers what the test wrote."""
    root = login(server.base_url, ADMIN_EMAIL, ADMIN_PASSWORD)
    team = ok(root.api.get(f"/teams/name/{TEAM_NAME}"))
    alice, bob, carol = (create_user(root, server.base_url, name, team["id"]) for name in ("alice", "bob", "carol"))
    town = ok(root.api.get(f"/teams/{team['id']}/channels/name/town-square"))["id"]
    plans = ok(
        alice.api.post(
            "/channels", json={"team_id": team["id"], "name": "secret-plans", "display_name": "Plans", "type": "P"}
        ),
        201,
    )["id"]
    ok(alice.api.post(f"/channels/{plans}/members", json={"user_id": bob.id}), 201)
    files = {name: os.urandom(size) for name, size in (("plan.pdf", 70_000), ("notes.txt", 1), ("empty.bin", 0))}

    hello = _post(alice, town, "hello everyone")
    reply = _post(bob, town, "hello alice", root_id=hello["id"])
    for who, post in ((carol, hello), (bob, hello), (carol, reply)):
        ok(who.api.post("/reactions", json={"user_id": who.id, "post_id": post["id"], "emoji_name": "tada"}))
    pinned = _post(alice, town, "read me first")
    ok(alice.api.post(f"/posts/{pinned['id']}/pin"))
    flag = [{"user_id": bob.id, "category": "flagged_post", "name": pinned["id"], "value": "true"}]
    ok(bob.api.put(f"/users/{bob.id}/preferences", json=flag))
    gone = _post(alice, town, "this one is deleted")
    ok(alice.api.delete(f"/posts/{gone['id']}"))
    with_files = [_upload(alice, plans, "plan.pdf", files["plan.pdf"]), _upload(alice, plans, "empty.bin", b"")]
    plan = _post(alice, plans, "the plan", file_ids=with_files)
    _post(bob, plans, "notes", root_id=plan["id"], file_ids=[_upload(bob, plans, "notes.txt", files["notes.txt"])])
    favorite = [{"user_id": alice.id, "category": "favorite_channel", "name": plans, "value": "true"}]
    ok(alice.api.put(f"/users/{alice.id}/preferences", json=favorite))

    direct = ok(alice.api.post("/channels/direct", json=[alice.id, bob.id]), 201)["id"]
    whisper = _post(alice, direct, "psst")
    _post(bob, direct, "what", root_id=whisper["id"])
    own = ok(carol.api.post("/channels/direct", json=[carol.id, carol.id]), 201)["id"]
    _post(carol, own, "note to self")
    group = ok(alice.api.post("/channels/group", json=[alice.id, bob.id, carol.id]), 201)["id"]
    _post(carol, group, "all three of us")

    ok(root.api.post("/bots", json={"username": "build-bot", "display_name": "Build bot"}), 201)
    ok(root.api.delete(f"/users/{carol.id}"))
    return {"files": files, "team": team}


def test_the_archive_is_what_mattermost_imports_and_holds_everything(
    server: ServerProcess, workspace: dict[str, Any]
) -> None:
    archive: Archive = check_archive(_export(server))

    assert archive.lines[0]["info"]["generator"] == "canopy-workspace-server"
    assert [line["name"] for line in archive.of_type("team")] == [TEAM_NAME]
    channels = {line["name"]: line for line in archive.of_type("channel")}
    assert {"town-square", "off-topic", "secret-plans"} <= set(channels)
    assert channels["secret-plans"] | {"team": TEAM_NAME} == channels["secret-plans"]
    assert channels["secret-plans"]["type"] == "P" and channels["secret-plans"]["display_name"] == "Plans"

    users = {line["username"]: line for line in archive.of_type("user")}
    assert set(users) == {"admin", "alice", "bob", "carol", "build-bot"}
    assert not any("password" in user for user in users.values()), "password hashes stay behind"
    assert users["admin"]["roles"] == "system_admin system_user" and users["alice"]["roles"] == "system_user"
    assert users["carol"]["delete_at"] > 0 and users["alice"]["delete_at"] == 0
    (alice_team,) = users["alice"]["teams"]
    assert alice_team["name"] == TEAM_NAME and alice_team["roles"] == "team_user"
    alice_channels = {c["name"]: c for c in alice_team["channels"]}
    assert alice_channels["secret-plans"]["roles"] == "channel_user channel_admin"
    assert alice_channels["secret-plans"]["favorite"] is True and alice_channels["town-square"]["favorite"] is False
    assert "secret-plans" not in {c["name"] for c in users["carol"]["teams"][0]["channels"]}

    posts = _by_message(archive.of_type("post"))
    assert "this one is deleted" not in posts
    hello = posts["hello everyone"]
    assert (hello["team"], hello["channel"], hello["user"]) == (TEAM_NAME, "town-square", "alice")
    assert sorted(r["user"] for r in hello["reactions"]) == ["bob", "carol"]
    assert all(r["emoji_name"] == "tada" and r["create_at"] >= hello["create_at"] for r in hello["reactions"])
    (reply,) = hello["replies"]
    assert (reply["user"], reply["message"]) == ("bob", "hello alice")
    assert [r["user"] for r in reply["reactions"]] == ["carol"]
    assert posts["read me first"]["is_pinned"] is True and posts["read me first"]["flagged_by"] == ["bob"]
    assert "is_pinned" not in hello and "flagged_by" not in hello

    plan = posts["the plan"]
    assert plan["channel"] == "secret-plans" and len(plan["attachments"]) == 2
    attached = [archive.attachment(a["path"]) for a in plan["attachments"]]
    assert attached == [workspace["files"]["plan.pdf"], b""]
    (notes,) = plan["replies"]
    assert archive.attachment(notes["attachments"][0]["path"]) == workspace["files"]["notes.txt"]
    assert len([name for name in archive.members if name.startswith("data/")]) == 3

    direct_channels = sorted(line["members"] for line in archive.of_type("direct_channel"))
    assert direct_channels == [["alice", "bob"], ["alice", "bob", "carol"], ["carol", "carol"]]
    direct = _by_message(archive.of_type("direct_post"))
    assert direct["psst"]["channel_members"] == ["alice", "bob"]
    assert [r["message"] for r in direct["psst"]["replies"]] == ["what"]
    assert direct["note to self"]["channel_members"] == ["carol", "carol"]
    assert direct["all three of us"]["channel_members"] == ["alice", "bob", "carol"]


def test_an_export_holds_the_workspace_as_it_was_asked_for(server: ServerProcess, workspace: dict[str, Any]) -> None:
    """One snapshot, taken before the first byte: what is written meanwhile is in the next export."""
    writer = login(server.base_url, "alice", "password-123")
    town = ok(writer.api.get(f"/teams/{workspace['team']['id']}/channels/name/town-square"))["id"]
    headers = {"Authorization": f"Bearer {server.control_token}"}
    with httpx.stream("GET", f"{server.base_url}/api/v4/canopy/export", headers=headers, timeout=60) as response:
        chunks = response.iter_bytes()
        first = next(chunks)
        root = _post(writer, town, "written during an export")
        _post(writer, town, "its reply", root_id=root["id"])
        archive = check_archive(first + b"".join(chunks))
    assert "written during an export" not in _by_message(archive.of_type("post"))
    assert "written during an export" in _by_message(check_archive(_export(server)).of_type("post"))


def test_the_export_needs_the_control_token(server: ServerProcess) -> None:
    url = f"{server.base_url}/api/v4/canopy/export"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer not-the-token"}).status_code == 401


@pytest.mark.parametrize(
    ("name", "exported"),
    [("acme", "acme"), ("helpdesk", "team-helpdesk"), ("post-office", "team-post-office"), ("x" * 63, "x" * 63)],
)
def test_team_names_mattermost_reserves_are_renamed(name: str, exported: str) -> None:
    assert importable_team_name(name) == exported


def _rebuilt(data: bytes, edit: Callable[[list[str]], list[str]], *, drop_files: bool = False) -> bytes:
    """``data`` with its JSONL lines edited (and its attachments left out)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for name in source.namelist():
            if name.endswith(".jsonl"):
                target.writestr(name, "\n".join(edit(source.read(name).decode().splitlines())) + "\n")
            elif not drop_files:
                target.writestr(name, source.read(name))
    return out.getvalue()


def _replace_user(lines: list[str]) -> list[str]:
    return [line.replace('"user":"alice"', '"user":"nobody"', 1) if '"type":"post"' in line else line for line in lines]


@pytest.mark.parametrize(
    ("edit", "drop_files", "complaint"),
    [
        (lambda lines: lines, True, "is not in the archive"),
        (_replace_user, False, "names no earlier user"),
        (lambda lines: [lines[0], *[line for line in lines[1:] if '"type":"channel"' not in line]], False, "channel"),
        (lambda lines: lines[1:], False, "the first line must be version 1"),
        (lambda lines: [*lines, '{"type":"thread","thread":{}}'], False, "unknown type"),
        (lambda lines: [*lines, "{not json"], False, "not JSON"),
    ],
)
def test_the_checker_refuses_what_mattermost_would(
    server: ServerProcess,
    workspace: dict[str, Any],
    edit: Callable[[list[str]], list[str]],
    drop_files: bool,
    complaint: str,
) -> None:
    with pytest.raises(AssertionError, match=complaint):
        check_archive(_rebuilt(_export(server), edit, drop_files=drop_files))
