"""Private channels, direct and group messages never leak: not by id, thread, reactions, files, pins, lookups,
nor search."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from mattermostdriver import Driver
from mattermostdriver.exceptions import InvalidOrMissingParameters, NotEnoughPermissions

from tests.workspace_server.content_helpers import driver, make_user, png_bytes


@dataclass
class Secret:
    """A post in a channel carol is not in, with a reply, a reaction, a pin and an attached image."""

    kind: str
    channel: dict[str, Any]
    post: dict[str, Any]
    reply: dict[str, Any]
    file_id: str


@pytest.fixture(scope="module")
def admin_client(server: Any, admin: Any) -> Driver:
    return driver(server, admin.username, admin.password)


@pytest.fixture(scope="module")
def team(server: Any, admin_client: Driver) -> dict[str, Any]:
    return admin_client.teams.get_team_by_name(server.team_name)


@pytest.fixture(scope="module")
def people(server: Any, admin_client: Driver, team: dict[str, Any]) -> dict[str, Driver]:
    clients = {}
    for name in ("alice", "bob", "carol", "dave"):
        _, password = make_user(admin_client, team["id"], name)
        clients[name] = driver(server, name, password)
    return clients


def _secret(kind: str, channel: dict[str, Any], alice: Driver, bob: Driver) -> Secret:
    upload = alice.files.upload_file(channel["id"], {"files": ("plan.png", png_bytes(64, 64), "image/png")})
    file_id = upload["file_infos"][0]["id"]
    post = alice.posts.create_post(
        {"channel_id": channel["id"], "message": f"nebula {kind} launch codes", "file_ids": [file_id]}
    )
    assert post["file_ids"] == [file_id]
    reply = bob.posts.create_post({"channel_id": channel["id"], "message": "roger nebula", "root_id": post["id"]})
    bob.reactions.create_reaction({"user_id": bob.client.userid, "post_id": post["id"], "emoji_name": "eyes"})
    alice.posts.pin_post_to_channel(post["id"])
    return Secret(kind, channel, post, reply, file_id)


@pytest.fixture(scope="module")
def secrets(team: dict[str, Any], people: dict[str, Driver]) -> list[Secret]:
    alice, bob, dave = people["alice"], people["bob"], people["dave"]
    vault = alice.channels.create_channel(
        {"team_id": team["id"], "name": "vault", "display_name": "Vault", "type": "P"}
    )
    alice.channels.add_user(vault["id"], {"user_id": bob.client.userid})
    direct = alice.channels.create_direct_message_channel([alice.client.userid, bob.client.userid])
    group = alice.channels.create_group_message_channel([bob.client.userid, dave.client.userid])
    return [
        _secret("private", vault, alice, bob),
        _secret("direct", direct, alice, bob),
        _secret("group", group, alice, bob),
    ]


def search_ids(server: Any, client: Driver, terms: str, team_id: str | None = None) -> set[str]:
    path = f"/teams/{team_id}/posts/search" if team_id else "/posts/search"
    response = httpx.post(
        f"{server.base_url}/api/v4{path}",
        json={"terms": terms},
        headers={"Authorization": f"Bearer {client.client.token}"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body["order"]) == set(body["posts"])
    return set(body["order"])


def test_direct_and_group_channels_follow_mattermost_rules(
    server: Any, people: dict[str, Driver], secrets: list[Secret]
) -> None:
    alice, bob, carol, dave = (people[n] for n in ("alice", "bob", "carol", "dave"))
    direct = next(s.channel for s in secrets if s.kind == "direct")
    assert direct["type"] == "D" and direct["team_id"] == ""
    assert direct["name"] == "__".join(sorted([alice.client.userid, bob.client.userid]))
    # Asking again answers the same channel, whoever of the two asks.
    assert bob.channels.create_direct_message_channel([bob.client.userid, alice.client.userid])["id"] == direct["id"]
    with pytest.raises(NotEnoughPermissions):
        carol.channels.create_direct_message_channel([alice.client.userid, bob.client.userid])

    group = next(s.channel for s in secrets if s.kind == "group")
    ids = sorted([alice.client.userid, bob.client.userid, dave.client.userid])
    assert group["type"] == "G" and group["team_id"] == ""
    assert group["name"] == hashlib.sha1("".join(ids).encode()).hexdigest()
    assert group["display_name"] == "alice, bob, dave"
    assert {m["user_id"] for m in dave.channels.get_channel_members(group["id"])} == set(ids)
    with pytest.raises(InvalidOrMissingParameters):
        alice.channels.create_group_message_channel([bob.client.userid])
    # Nobody is added to, or removed from, a direct or group channel.
    with pytest.raises(InvalidOrMissingParameters):
        alice.channels.add_user(group["id"], {"user_id": carol.client.userid})
    with pytest.raises(InvalidOrMissingParameters):
        alice.channels.remove_channel_member(direct["id"], bob.client.userid)

    # Direct and group channels come with every team's channel list of their members, and with no one else's.
    team = alice.teams.get_team_by_name(server.team_name)
    bobs = {c["id"] for c in bob.channels.get_channels_for_user("me", team["id"])}
    assert {direct["id"], group["id"]} <= bobs
    carols = {c["id"] for c in carol.channels.get_channels_for_user("me", team["id"])}
    assert not {s.channel["id"] for s in secrets} & carols
    bob_members = {m["channel_id"] for m in bob.channels.get_channel_members_for_user("me", team["id"])}
    assert {direct["id"], group["id"]} <= bob_members


@pytest.mark.parametrize("kind", ["private", "direct", "group"])
def test_outsider_reads_nothing(server: Any, people: dict[str, Driver], secrets: list[Secret], kind: str) -> None:
    carol = people["carol"]
    secret = next(s for s in secrets if s.kind == kind)
    post_id, channel_id, file_id = secret.post["id"], secret.channel["id"], secret.file_id
    forbidden = [
        lambda: carol.posts.get_post(post_id),
        lambda: carol.posts.get_post(secret.reply["id"]),
        lambda: carol.posts.get_thread(post_id),
        lambda: carol.posts.get_thread(secret.reply["id"]),
        lambda: carol.reactions.get_reactions_of_post(post_id),
        lambda: carol.posts.get_file_info_for_post(post_id),
        lambda: carol.files.get_file(file_id),
        lambda: carol.files.get_file_metadata(file_id),
        lambda: carol.files.get_file_thumbnail(file_id),
        lambda: carol.files.get_file_preview(file_id),
        lambda: carol.channels.get_channel(channel_id),
        lambda: carol.channels.get_channel_pinned_posts(channel_id),
        lambda: carol.channels.get_channel_members(channel_id),
        lambda: carol.posts.get_posts_for_channel(channel_id),
        lambda: carol.posts.get_posts_for_channel(channel_id, params={"since": 0}),
        lambda: carol.posts.create_post({"channel_id": channel_id, "message": "let me in"}),
        lambda: carol.reactions.create_reaction(
            {"user_id": carol.client.userid, "post_id": post_id, "emoji_name": "smile"}
        ),
        lambda: carol.posts.patch_post(post_id, {"message": "defaced"}),
        lambda: carol.posts.delete_post(post_id),
        lambda: carol.posts.pin_post_to_channel(post_id),
        lambda: carol.files.upload_file(channel_id, {"files": ("x.txt", b"x", "text/plain")}),
    ]
    for attempt in forbidden:
        with pytest.raises(NotEnoughPermissions):
            attempt()
    headers = {"Authorization": f"Bearer {carol.client.token}"}
    by_ids = httpx.post(f"{server.base_url}/api/v4/posts/ids", json=[post_id], headers=headers)
    assert by_ids.status_code == 200 and by_ids.json() == []
    bulk = httpx.post(f"{server.base_url}/api/v4/posts/ids/reactions", json=[post_id], headers=headers)
    assert bulk.status_code == 200 and bulk.json() == {}

    # The members themselves read all of it.
    bob = people["bob"]
    assert bob.posts.get_thread(post_id)["order"] == [secret.reply["id"], post_id]
    assert [r["emoji_name"] for r in bob.reactions.get_reactions_of_post(post_id)] == ["eyes"]
    assert bob.files.get_file(file_id).content == png_bytes(64, 64)
    assert bob.channels.get_channel_pinned_posts(channel_id)["order"] == [post_id]


def test_search_covers_only_the_callers_channels(server: Any, people: dict[str, Driver], secrets: list[Secret]) -> None:
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    team = alice.teams.get_team_by_name(server.team_name)
    lobby = alice.channels.create_channel({"team_id": team["id"], "name": "lobby", "display_name": "Lobby"})
    public = alice.posts.create_post({"channel_id": lobby["id"], "message": "nebula public note"})
    secret_posts = {s.post["id"] for s in secrets} | {s.reply["id"] for s in secrets}

    assert search_ids(server, alice, "nebula", team["id"]) == secret_posts | {public["id"]}
    assert search_ids(server, bob, "nebula", team["id"]) == secret_posts  # not in the lobby
    for terms in ("nebula", "in:vault nebula", "from:alice nebula", '"launch codes"', "nebul*"):
        assert search_ids(server, carol, terms, team["id"]) == set(), terms
        assert search_ids(server, carol, terms) == set(), terms
    # Carol may read the open lobby (she is in the team), but search covers the channels she is in.
    assert carol.posts.get_post(public["id"])["id"] == public["id"]
    carol.channels.add_user(lobby["id"], {"user_id": carol.client.userid})
    assert search_ids(server, carol, "nebula", team["id"]) == {public["id"]}
    assert search_ids(server, carol, "nebula") == {public["id"]}
    direct = next(s for s in secrets if s.kind == "direct")
    assert search_ids(server, bob, "in:@alice nebula", team["id"]) == {direct.post["id"], direct.reply["id"]}


def test_removal_from_a_private_channel_ends_access(
    server: Any, team: dict[str, Any], people: dict[str, Driver]
) -> None:
    # A channel of its own: the shared secrets stay as the other tests expect them.
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    vault = alice.channels.create_channel(
        {"team_id": team["id"], "name": "strongroom", "display_name": "Strongroom", "type": "P"}
    )
    alice.channels.add_user(vault["id"], {"user_id": bob.client.userid})
    upload = alice.files.upload_file(vault["id"], {"files": ("plan.png", png_bytes(64, 64), "image/png")})
    file_id = upload["file_infos"][0]["id"]
    post = alice.posts.create_post({"channel_id": vault["id"], "message": "quasar plans", "file_ids": [file_id]})
    reply = bob.posts.create_post({"channel_id": vault["id"], "message": "roger quasar", "root_id": post["id"]})
    assert search_ids(server, bob, "quasar", team["id"]) == {post["id"], reply["id"]}
    # Only its members remove people from it.
    with pytest.raises(NotEnoughPermissions):
        carol.channels.remove_channel_member(vault["id"], bob.client.userid)
    assert bob.client.userid in {m["user_id"] for m in alice.channels.get_channel_members(vault["id"])}
    assert alice.channels.remove_channel_member(vault["id"], bob.client.userid) == {"status": "OK"}
    assert bob.client.userid not in {m["user_id"] for m in alice.channels.get_channel_members(vault["id"])}
    with pytest.raises(NotEnoughPermissions):
        bob.posts.get_post(post["id"])
    with pytest.raises(NotEnoughPermissions):
        bob.files.get_file(file_id)
    assert search_ids(server, bob, "quasar", team["id"]) == set()
    # Bob uploaded nothing there; alice's own file stays hers.
    assert alice.files.get_file(file_id).status_code == 200
    # Nobody leaves the team's default channel.
    town_square = alice.channels.get_channel_by_name(team["id"], "town-square")
    with pytest.raises(InvalidOrMissingParameters):
        carol.channels.remove_channel_member(town_square["id"], carol.client.userid)


def test_unattached_files_are_the_uploaders_only(server: Any, people: dict[str, Driver]) -> None:
    alice, bob = people["alice"], people["bob"]
    team = alice.teams.get_team_by_name(server.team_name)
    town_square = alice.channels.get_channel_by_name(team["id"], "town-square")
    upload = alice.files.upload_file(town_square["id"], {"files": ("draft.txt", b"draft", "text/plain")})
    file_id = upload["file_infos"][0]["id"]
    assert alice.files.get_file(file_id).content == b"draft"
    with pytest.raises(NotEnoughPermissions):
        bob.files.get_file(file_id)
    # Nor can bob attach it to a post of his: the file id is dropped, the file stays unattached.
    post = bob.posts.create_post({"channel_id": town_square["id"], "message": "mine now", "file_ids": [file_id]})
    assert post["file_ids"] == [] and "files" not in post["metadata"]
    assert alice.files.get_file_metadata(file_id)["post_id"] == ""
