"""The WebSocket events of content changes: post_edited, post_deleted, reaction_added/removed, direct_added,
group_added (payloads are JSON strings inside the event's JSON, as Mattermost sends them); outsiders get none."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.workspace_server.wsclient import User, WsClient, create_user, login, ok


@pytest.fixture(scope="module")
def admin_user(server: Any, admin: Any) -> User:
    return login(server.base_url, admin.username, admin.password)


@pytest.fixture(scope="module")
def team_id(admin_user: User, server: Any) -> str:
    return str(ok(admin_user.api.get(f"/teams/name/{server.team_name}"))["id"])


@pytest.fixture(scope="module")
def users(server: Any, admin_user: User, team_id: str) -> dict[str, User]:
    return {name: create_user(admin_user, server.base_url, name, team_id) for name in ("ann", "ben", "cat", "dan")}


@pytest.fixture
def sockets(server: Any) -> Iterator[dict[str, WsClient]]:
    opened: dict[str, WsClient] = {}
    yield opened
    for ws in opened.values():
        ws.close()


def of(event: str, channel_id: str) -> Any:
    return lambda e: e["event"] == event and e["broadcast"]["channel_id"] == channel_id


def test_post_changes_reach_members_only(
    server: Any, users: dict[str, User], team_id: str, sockets: dict[str, WsClient]
) -> None:
    ann, ben, cat = users["ann"], users["ben"], users["cat"]
    channel = ok(
        ann.api.post("/channels", json={"team_id": team_id, "name": "events", "display_name": "Events", "type": "P"}),
        201,
    )
    ok(ann.api.post(f"/channels/{channel['id']}/members", json={"user_id": ben.id}), 201)
    for name, user in (("ann", ann), ("ben", ben), ("cat", cat)):
        sockets[name] = WsClient(server.base_url, user.token)
    cid = channel["id"]

    upload = ok(ann.api.post("/files", params={"channel_id": cid, "filename": "a.txt"}, content=b"attached"), 201)
    file_id = upload["file_infos"][0]["id"]
    post = ok(ann.api.post("/posts", json={"channel_id": cid, "message": "first", "file_ids": [file_id]}), 201)
    posted = json.loads(sockets["ben"].wait_event(of("posted", cid))["data"]["post"])
    assert posted["id"] == post["id"] and posted["file_ids"] == [file_id]
    assert [f["id"] for f in posted["metadata"]["files"]] == [file_id]

    ok(ann.api.put(f"/posts/{post['id']}/patch", json={"message": "first, edited"}))
    edited = json.loads(sockets["ben"].wait_event(of("post_edited", cid))["data"]["post"])
    assert edited["id"] == post["id"] and edited["message"] == "first, edited" and edited["edit_at"] > 0

    ok(ben.api.post("/reactions", json={"user_id": ben.id, "post_id": post["id"], "emoji_name": "tada"}))
    added = sockets["ann"].wait_event(of("reaction_added", cid))
    reaction = json.loads(added["data"]["reaction"])
    assert (reaction["user_id"], reaction["post_id"], reaction["emoji_name"]) == (ben.id, post["id"], "tada")
    ok(ben.api.delete(f"/users/{ben.id}/posts/{post['id']}/reactions/tada"))
    removed = json.loads(sockets["ann"].wait_event(of("reaction_removed", cid))["data"]["reaction"])
    assert removed["emoji_name"] == "tada" and removed["delete_at"] > 0

    ok(ann.api.post(f"/posts/{post['id']}/pin"))
    pinned = sockets["ben"].wait_event(lambda e: of("post_edited", cid)(e) and '"is_pinned":true' in e["data"]["post"])
    assert json.loads(pinned["data"]["post"])["is_pinned"] is True

    ok(ann.api.delete(f"/posts/{post['id']}"))
    deleted = sockets["ben"].wait_event(of("post_deleted", cid))
    assert json.loads(deleted["data"]["post"])["delete_at"] > 0 and deleted["data"]["delete_by"] == ann.id

    # Cat is in the team but not the channel: a post to town-square arrives, nothing from the private channel did.
    town_square = ok(cat.api.get(f"/teams/{team_id}/channels/name/town-square"))["id"]
    ok(ann.api.post("/posts", json={"channel_id": town_square, "message": "marker"}), 201)
    sockets["cat"].wait_event(of("posted", town_square))
    assert not [e for e in sockets["cat"].events if e["broadcast"]["channel_id"] == cid]


def test_direct_and_group_channels_announce_themselves(
    server: Any, users: dict[str, User], team_id: str, sockets: dict[str, WsClient]
) -> None:
    ann, ben, cat, dan = users["ann"], users["ben"], users["cat"], users["dan"]
    sockets["ben"] = WsClient(server.base_url, ben.token)
    sockets["dan"] = WsClient(server.base_url, dan.token)
    direct = ok(ann.api.post("/channels/direct", json=[ann.id, ben.id]), 201)
    event = sockets["ben"].wait_event(of("direct_added", direct["id"]))
    assert event["data"]["teammate_id"] == ben.id and event["data"]["creator_id"] == ann.id
    group = ok(ann.api.post("/channels/group", json=[ben.id, cat.id]), 201)
    event = sockets["ben"].wait_event(of("group_added", group["id"]))
    assert sorted(json.loads(event["data"]["teammate_ids"])) == sorted([ann.id, ben.id, cat.id])
    # Dan is in neither: a later post to town-square reaches him, nothing before it came from those channels
    # (events arrive in the order they were published).
    ok(ann.api.post("/posts", json={"channel_id": group["id"], "message": "group hello"}), 201)
    sockets["ben"].wait_event(of("posted", group["id"]))
    town_square = ok(dan.api.get(f"/teams/{team_id}/channels/name/town-square"))["id"]
    ok(ann.api.post("/posts", json={"channel_id": town_square, "message": "marker"}), 201)
    sockets["dan"].wait_event(of("posted", town_square))
    assert not [e for e in sockets["dan"].events if e["broadcast"]["channel_id"] in (direct["id"], group["id"])]
