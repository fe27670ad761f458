"""The Mattermost WebSocket API against the real server process: protocol, events, who receives them, and the
unread and mention counts that move with them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from tests.workspace_server.wsclient import User, WsClient, create_user, login, ok


@pytest.fixture(scope="module")
def admin_user(server: Any, admin: Any) -> User:
    return login(server.base_url, admin.username, admin.password)


@pytest.fixture(scope="module")
def team_id(admin_user: User, server: Any) -> str:
    return str(ok(admin_user.api.get(f"/teams/name/{server.team_name}"))["id"])


@pytest.fixture(scope="module")
def alice(server: Any, admin_user: User, team_id: str) -> User:
    return create_user(admin_user, server.base_url, "alice", team_id)


@pytest.fixture(scope="module")
def bob(server: Any, admin_user: User, team_id: str) -> User:
    return create_user(admin_user, server.base_url, "bob", team_id)


@pytest.fixture(scope="module")
def carol(server: Any, admin_user: User, team_id: str) -> User:
    return create_user(admin_user, server.base_url, "carol", team_id)


@pytest.fixture(scope="module")
def town_square(alice: User, team_id: str) -> str:
    return str(ok(alice.api.get(f"/teams/{team_id}/channels/name/town-square"))["id"])


def post(user: User, channel_id: str, message: str, root_id: str = "") -> dict[str, Any]:
    body = {"channel_id": channel_id, "message": message, "root_id": root_id}
    return dict(ok(user.api.post("/posts", json=body), 201))


def posted_with(message: str) -> Any:
    return lambda e: e["event"] == "posted" and json.loads(e["data"]["post"])["message"] == message


def create_channel(user: User, team_id: str, name: str, kind: str = "O") -> str:
    body = {"team_id": team_id, "name": name, "display_name": name.title(), "type": kind}
    return str(ok(user.api.post("/channels", json=body), 201)["id"])


def add_member(user: User, channel_id: str, user_id: str) -> None:
    ok(user.api.post(f"/channels/{channel_id}/members", json={"user_id": user_id}), 201)


def test_hello_has_seq_0_and_ping_answers_pong(alice: User, connect: Any) -> None:
    ws = connect(alice)
    assert ws.hello["seq"] == 0
    assert ws.hello["data"]["connection_id"] and ws.hello["data"]["server_version"].startswith("9.")
    assert ws.hello["broadcast"]["user_id"] == alice.id
    seq = ws.send("ping")
    pong = ws.reply(seq)
    assert pong["status"] == "OK" and pong["data"]["text"] == "pong" and pong["data"]["server_time"] > 0
    statuses = ws.reply(ws.send("get_statuses_by_ids", {"user_ids": [alice.id, "x" * 26]}))
    assert statuses["data"] == {alice.id: "online", "x" * 26: "offline"}


def test_token_in_the_upgrade_request_authenticates(server: Any, alice: User) -> None:
    ws = WsClient(server.base_url, header_token=alice.token)
    try:
        hello = ws.wait_event(lambda e: e["event"] == "hello")
        assert hello["seq"] == 0 and hello["broadcast"]["user_id"] == alice.id
        assert ws.reply(ws.send("ping"))["data"]["text"] == "pong"
    finally:
        ws.close()


def test_bad_token_gets_a_fail_reply_and_a_close(server: Any) -> None:
    ws = WsClient(server.base_url)
    try:
        seq = ws.send("authentication_challenge", {"token": "not-a-token"})
        reply = ws.reply(seq)
        assert reply["status"] == "FAIL" and reply["error"]["id"].startswith("api.web_socket_router")
        with pytest.raises(ConnectionClosed) as closed:
            ws.ws.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        assert not ws.events
    finally:
        ws.close()


def test_actions_before_authentication_are_refused(server: Any, alice: User) -> None:
    ws = WsClient(server.base_url)
    try:
        refused = ws.reply(ws.send("ping"))
        assert refused["status"] == "FAIL" and "data" not in refused and not ws.events
        hello = ws.authenticate(alice.token)
        assert hello["seq"] == 0
        assert ws.reply(ws.send("ping"))["data"]["text"] == "pong"
    finally:
        ws.close()


def test_posted_carries_the_post_as_a_json_string_and_the_mentions(
    alice: User, bob: User, town_square: str, team_id: str, connect: Any
) -> None:
    ws = connect(alice)
    created = post(bob, town_square, "hello @alice, see `@bob` there")
    event = ws.wait_event(posted_with("hello @alice, see `@bob` there"))
    data = event["data"]
    assert isinstance(data["post"], str) and json.loads(data["post"])["id"] == created["id"]
    assert json.loads(data["post"]) == created | {"pending_post_id": ""}
    assert isinstance(data["mentions"], str) and json.loads(data["mentions"]) == [alice.id]
    assert data["sender_name"] == "@bob" and data["channel_name"] == "town-square"
    assert data["channel_type"] == "O" and data["channel_display_name"] == "Town Square"
    assert data["team_id"] == team_id and data["set_online"] is True
    assert event["broadcast"]["channel_id"] == town_square

    post(bob, town_square, "nobody mentioned")
    assert "mentions" not in ws.wait_event(posted_with("nobody mentioned"))["data"]


def test_seq_rises_by_one_per_event(alice: User, bob: User, town_square: str, connect: Any) -> None:
    ws = connect(alice)
    for i in range(20):
        post(bob, town_square, f"burst {i}")
    ws.wait_event(posted_with("burst 19"))
    # WsClient checked every event's seq on arrival: hello 0 then each one exactly one more.
    assert ws.next_seq >= 21


def test_pending_post_id_reaches_the_event(alice: User, bob: User, town_square: str, connect: Any) -> None:
    ws = connect(alice)
    body = {"channel_id": town_square, "message": "with pending id", "pending_post_id": f"{bob.id}:1234"}
    ok(bob.api.post("/posts", json=body), 201)
    event = ws.wait_event(posted_with("with pending id"))
    assert json.loads(event["data"]["post"])["pending_post_id"] == f"{bob.id}:1234"


def test_typing_reaches_the_others_but_not_the_typist(alice: User, bob: User, town_square: str, connect: Any) -> None:
    alice_ws, bob_ws = connect(alice), connect(bob)
    reply = bob_ws.reply(bob_ws.send("user_typing", {"channel_id": town_square, "parent_id": ""}))
    assert reply["status"] == "OK"
    typing = alice_ws.wait_event(lambda e: e["event"] == "typing")
    assert typing["data"] == {"parent_id": "", "user_id": bob.id}
    assert typing["broadcast"]["channel_id"] == town_square
    assert typing["broadcast"]["omit_users"] == {bob.id: True}
    post(alice, town_square, "sentinel after typing")
    bob_ws.wait_event(posted_with("sentinel after typing"))
    assert not [e for e in bob_ws.drain_events() if e["event"] == "typing"]


def test_typing_in_a_channel_one_is_not_in_is_refused(alice: User, carol: User, team_id: str, connect: Any) -> None:
    private = create_channel(alice, team_id, "typing-secret", "P")
    carol_ws = connect(carol)
    reply = carol_ws.reply(carol_ws.send("user_typing", {"channel_id": private, "parent_id": ""}))
    assert reply["status"] == "FAIL"


def test_private_channel_events_never_reach_non_members(
    alice: User, bob: User, carol: User, team_id: str, town_square: str, connect: Any
) -> None:
    carol_ws, bob_ws = connect(carol), connect(bob)
    private = create_channel(alice, team_id, "secret-plans", "P")
    add_member(alice, private, bob.id)
    bob_ws.wait_event(lambda e: e["event"] == "user_added" and e["broadcast"]["channel_id"] == private)
    alice_ws = connect(alice)
    post(alice, private, "the secret")
    alice_ws.reply(alice_ws.send("user_typing", {"channel_id": private, "parent_id": ""}))
    bob_ws.wait_event(posted_with("the secret"))
    bob_ws.wait_event(lambda e: e["event"] == "typing" and e["broadcast"]["channel_id"] == private)

    post(alice, town_square, "sentinel for carol")
    carol_ws.wait_event(posted_with("sentinel for carol"))
    leaked = [e for e in carol_ws.drain_events() if private in json.dumps(e)]
    assert leaked == []


def test_direct_messages_never_reach_third_parties(
    alice: User, bob: User, carol: User, town_square: str, connect: Any
) -> None:
    dm = str(ok(alice.api.post("/channels/direct", json=[alice.id, bob.id]), 201)["id"])
    carol_ws, bob_ws = connect(carol), connect(bob)
    post(alice, dm, "just between us")
    event = bob_ws.wait_event(posted_with("just between us"))
    assert event["data"]["channel_type"] == "D" and json.loads(event["data"]["mentions"]) == [bob.id]
    post(alice, town_square, "sentinel after dm")
    carol_ws.wait_event(posted_with("sentinel after dm"))
    assert [e for e in carol_ws.drain_events() if dm in json.dumps(e)] == []


def test_a_new_member_receives_the_next_post_at_once(alice: User, carol: User, team_id: str, connect: Any) -> None:
    channel = create_channel(alice, team_id, "late-joiners")
    alice_ws, carol_ws = connect(alice), connect(carol)
    post(alice, channel, "before carol")  # the hub now knows the channel's members
    alice_ws.wait_event(posted_with("before carol"))
    add_member(carol, channel, carol.id)
    post(alice, channel, "after carol")
    carol_ws.wait_event(posted_with("after carol"), timeout=5)
    assert not [e for e in carol_ws.drain_events() if e["event"] == "posted" and "before carol" in e["data"]["post"]]


def unread(user: User, channel_id: str) -> dict[str, Any]:
    return dict(ok(user.api.get(f"/users/me/channels/{channel_id}/unread")))


def test_unread_and_mention_counts_move_with_posts_and_views(
    alice: User, bob: User, carol: User, team_id: str, connect: Any
) -> None:
    channel = create_channel(bob, team_id, "counting")
    for user in (alice, carol):
        add_member(user, channel, user.id)
    ok(alice.api.post("/channels/members/me/view", json={"channel_id": channel}))
    start = unread(alice, channel)
    assert start["msg_count"] == 0 and start["mention_count"] == 0 and start["team_id"] == team_id

    post(bob, channel, "plain message")
    post(bob, channel, "hey @alice.")
    post(bob, channel, "attention @channel")
    post(bob, channel, "cc @carol")
    counts = unread(alice, channel)
    assert counts["channel_id"] == channel
    assert (counts["msg_count"], counts["mention_count"]) == (4, 2)
    assert (unread(carol, channel)["msg_count"], unread(carol, channel)["mention_count"]) == (4, 2)
    # The author's own posts leave them nothing unread.
    assert (unread(bob, channel)["msg_count"], unread(bob, channel)["mention_count"]) == (0, 0)

    team = ok(alice.api.get(f"/users/me/teams/{team_id}/unread"))
    assert team["team_id"] == team_id and team["msg_count"] >= 4 and team["mention_count"] >= 2
    teams = ok(alice.api.get("/users/me/teams/unread"))
    assert [t["team_id"] for t in teams] == [team_id]
    assert ok(alice.api.get("/users/me/teams/unread", params={"exclude_team": team_id})) == []

    ws = connect(alice)
    viewed = ok(alice.api.post("/channels/members/me/view", json={"channel_id": channel, "prev_channel_id": ""}))
    assert viewed["status"] == "OK" and set(viewed["last_viewed_at_times"]) == {channel}
    event = ws.wait_event(lambda e: e["event"] == "channel_viewed")
    assert event["data"] == {"channel_id": channel} and event["broadcast"]["user_id"] == alice.id
    assert (unread(alice, channel)["msg_count"], unread(alice, channel)["mention_count"]) == (0, 0)
    member = ok(alice.api.get(f"/channels/{channel}/members/me"))
    assert member["msg_count"] == 4 and member["mention_count"] == 0
    assert member["last_viewed_at"] == viewed["last_viewed_at_times"][channel]
    # Carol has not looked yet.
    assert unread(carol, channel)["mention_count"] == 2


def test_reply_mentions_count_and_root_counts_do_not(alice: User, bob: User, team_id: str) -> None:
    channel = create_channel(bob, team_id, "threads")
    add_member(alice, channel, alice.id)
    ok(alice.api.post("/channels/members/me/view", json={"channel_id": channel}))
    root = post(bob, channel, "root")
    post(bob, channel, "reply to @alice", root_id=root["id"])
    counts = unread(alice, channel)
    assert (counts["msg_count"], counts["mention_count"], counts["msg_count_root"]) == (2, 1, 1)
    assert counts["mention_count_root"] == 0


def test_other_users_unread_counts_are_private(alice: User, bob: User, town_square: str, team_id: str) -> None:
    for path in (f"/users/{alice.id}/channels/{town_square}/unread", f"/users/{alice.id}/teams/unread"):
        response = bob.api.get(path)
        assert response.status_code == 403, response.text


def test_viewing_a_channel_one_is_not_in_changes_nothing(alice: User, carol: User, team_id: str) -> None:
    private = create_channel(alice, team_id, "not-for-carol", "P")
    viewed = ok(carol.api.post("/channels/members/me/view", json={"channel_id": private}))
    assert viewed == {"status": "OK", "last_viewed_at_times": {}}


def test_a_removed_member_stops_receiving_the_channel(
    alice: User, bob: User, team_id: str, town_square: str, connect: Any
) -> None:
    private = create_channel(alice, team_id, "soon-without-bob", "P")
    add_member(alice, private, bob.id)
    bob_ws = connect(bob)
    post(alice, private, "bob still here")
    bob_ws.wait_event(posted_with("bob still here"))
    ok(alice.api.delete(f"/channels/{private}/members/{bob.id}"))
    removed = bob_ws.wait_event(lambda e: e["event"] == "user_removed")
    assert removed["data"]["channel_id"] == private and removed["broadcast"]["user_id"] == bob.id
    post(alice, private, "bob is gone")
    post(alice, town_square, "sentinel after removal")
    bob_ws.wait_event(posted_with("sentinel after removal"))
    assert [e for e in bob_ws.drain_events() if "bob is gone" in json.dumps(e)] == []


def test_deactivating_a_user_closes_their_websocket(server: Any, admin_user: User, team_id: str, connect: Any) -> None:
    dora = create_user(admin_user, server.base_url, "dora", team_id)
    ws = connect(dora)
    ok(admin_user.api.delete(f"/users/{dora.id}"))
    with pytest.raises(ConnectionClosed):
        while True:
            ws.ws.recv(timeout=10)
