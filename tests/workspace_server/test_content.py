"""A whole conversation through the unmodified mattermostdriver: channel, post, thread, reaction, file, search,
edit, pin, delete; and the paging cursors (since/before/after)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import psycopg
import pytest
from mattermostdriver import Driver
from mattermostdriver.exceptions import NotEnoughPermissions, ResourceNotFound

from tests.workspace_server.content_helpers import driver, image_format, image_size, make_user, png_bytes


@pytest.fixture(scope="module")
def admin_client(server: Any, admin: Any) -> Driver:
    return driver(server, admin.username, admin.password)


@pytest.fixture(scope="module")
def team(server: Any, admin_client: Driver) -> dict[str, Any]:
    return admin_client.teams.get_team_by_name(server.team_name)


@pytest.fixture(scope="module")
def alice(server: Any, admin_client: Driver, team: dict[str, Any]) -> Driver:
    _, password = make_user(admin_client, team["id"], "alice")
    return driver(server, "alice", password)


@pytest.fixture(scope="module")
def bob(server: Any, admin_client: Driver, team: dict[str, Any]) -> Driver:
    _, password = make_user(admin_client, team["id"], "bob")
    return driver(server, "bob", password)


def search(client: Driver, team_id: str, terms: str, **extra: Any) -> list[str]:
    """The ids of the posts a team search finds, newest first (checking the result's shape on the way)."""
    result = client.posts.search_for_team_posts(team_id, {"terms": terms, "is_or_search": False} | extra)
    assert set(result) >= {"order", "posts", "matches"}
    assert set(result["order"]) == set(result["posts"])
    order: list[str] = result["order"]
    return order


def test_full_conversation(server: Any, team: dict[str, Any], alice: Driver, bob: Driver) -> None:
    channel = alice.channels.create_channel(
        {"team_id": team["id"], "name": "rocketry", "display_name": "Rocketry", "type": "O"}
    )
    bob.channels.add_user(channel["id"], {"user_id": bob.client.userid})
    members = {m["user_id"] for m in alice.channels.get_channel_members(channel["id"])}
    assert members == {alice.client.userid, bob.client.userid}

    # A file, uploaded, then attached to a post.
    image = png_bytes(640, 480)
    uploaded = alice.files.upload_file(channel["id"], {"files": ("diagram.png", image, "image/png")})
    assert len(uploaded["file_infos"]) == 1
    info = uploaded["file_infos"][0]
    assert info["name"] == "diagram.png" and info["extension"] == "png" and info["size"] == len(image)
    assert info["mime_type"] == "image/png" and (info["width"], info["height"]) == (640, 480)
    assert info["has_preview_image"] is True and info["post_id"] == "" and info["channel_id"] == channel["id"]

    root = alice.posts.create_post(
        {"channel_id": channel["id"], "message": "Launch plan for the Zephyr rocket", "file_ids": [info["id"]]}
    )
    assert root["file_ids"] == [info["id"]]
    assert [f["id"] for f in root["metadata"]["files"]] == [info["id"]]
    assert alice.files.get_file_metadata(info["id"])["post_id"] == root["id"]
    assert [f["id"] for f in bob.posts.get_file_info_for_post(root["id"])] == [info["id"]]

    # Bob reads the file, its thumbnail and preview.
    download = bob.files.get_file(info["id"])
    assert download.content == image and download.headers["Content-Type"] == "image/png"
    thumbnail = bob.files.get_file_thumbnail(info["id"]).content
    assert image_format(thumbnail) == "JPEG"
    width, height = image_size(thumbnail)
    assert width <= 120 and height <= 100 and max(width, height) >= 100
    assert image_size(bob.files.get_file_preview(info["id"]).content) == (640, 480)

    # A thread reply and a reaction.
    reply = bob.posts.create_post({"channel_id": channel["id"], "message": "Sounds good", "root_id": root["id"]})
    reaction = bob.reactions.create_reaction(
        {"user_id": bob.client.userid, "post_id": root["id"], "emoji_name": "rocket"}
    )
    assert reaction["emoji_name"] == "rocket" and reaction["post_id"] == root["id"]
    reactions = alice.reactions.get_reactions_of_post(root["id"])
    assert [(r["user_id"], r["emoji_name"]) for r in reactions] == [(bob.client.userid, "rocket")]
    fetched = alice.posts.get_post(root["id"])
    assert fetched["has_reactions"] is True
    assert [r["emoji_name"] for r in fetched["metadata"]["reactions"]] == ["rocket"]
    assert [f["id"] for f in fetched["metadata"]["files"]] == [info["id"]]
    thread = alice.posts.get_thread(reply["id"])
    assert thread["order"] == [reply["id"], root["id"]]
    assert thread["posts"][root["id"]]["reply_count"] == 1

    # Search, as bob: words, a phrase, from:, in:, exclusions and prefixes.
    assert search(bob, team["id"], "zephyr") == [root["id"]]
    assert search(bob, team["id"], '"zephyr rocket"') == [root["id"]]
    assert search(bob, team["id"], '"rocket zephyr"') == []
    assert search(bob, team["id"], "from:alice launch") == [root["id"]]
    assert search(bob, team["id"], "from:bob launch") == []
    assert search(bob, team["id"], "in:rocketry rockets") == [root["id"]]
    assert search(bob, team["id"], "in:town-square zephyr") == []
    assert search(bob, team["id"], "zephyr -launch") == []
    assert search(bob, team["id"], "zeph*") == [root["id"]]
    assert search(bob, team["id"], "sounds zephyr", is_or_search=True) == [reply["id"], root["id"]]
    assert search(bob, team["id"], "sounds zephyr") == []
    matched = bob.posts.search_for_team_posts(team["id"], {"terms": "zephyr"})
    assert matched["matches"][root["id"]] == ["Zephyr"]

    # Edit: the new words are found, the old ones no longer.
    before_edit = int(time.time() * 1000)
    edited = alice.posts.patch_post(root["id"], {"message": "Launch plan for the Aurora rocket"})
    assert edited["edit_at"] >= before_edit and edited["message"] == "Launch plan for the Aurora rocket"
    assert search(bob, team["id"], "aurora") == [root["id"]]
    assert search(bob, team["id"], "zephyr") == []
    updated = alice.posts.update_post(root["id"], {"id": root["id"], "message": "Launch plan, final"})
    assert updated["message"] == "Launch plan, final" and updated["file_ids"] == [info["id"]]
    with pytest.raises(NotEnoughPermissions):
        bob.posts.patch_post(root["id"], {"message": "hijacked"})

    # Pin and unpin.
    alice.posts.pin_post_to_channel(root["id"])
    pinned = bob.channels.get_channel_pinned_posts(channel["id"])
    assert pinned["order"] == [root["id"]] and pinned["posts"][root["id"]]["is_pinned"] is True
    alice.posts.unpin_post_to_channel(root["id"])
    assert bob.channels.get_channel_pinned_posts(channel["id"])["order"] == []

    # Reaction removal.
    bob.reactions.delete_reaction(bob.client.userid, root["id"], "rocket")
    assert alice.reactions.get_reactions_of_post(root["id"]) == []
    assert "has_reactions" not in alice.posts.get_post(root["id"])

    # Delete the root: the thread and its file go with it; `since` still reports them, as deleted.
    since = int(time.time() * 1000) - 1
    with pytest.raises(NotEnoughPermissions):
        bob.posts.delete_post(root["id"])
    assert alice.posts.delete_post(root["id"]) == {"status": "OK"}
    with pytest.raises(ResourceNotFound):
        bob.posts.get_post(root["id"])
    with pytest.raises(ResourceNotFound):
        bob.posts.get_post(reply["id"])
    with pytest.raises(ResourceNotFound):
        bob.files.get_file(info["id"])
    assert bob.posts.get_posts_for_channel(channel["id"])["order"] == []
    changed = bob.posts.get_posts_for_channel(channel["id"], params={"since": since})
    assert set(changed["order"]) == {root["id"], reply["id"]}
    assert all(p["delete_at"] > 0 for p in changed["posts"].values())
    assert search(bob, team["id"], "launch") == []


def test_before_and_after_cursors(server: Any, team: dict[str, Any], alice: Driver) -> None:
    channel = alice.channels.create_channel(
        {"team_id": team["id"], "name": "cursors", "display_name": "Cursors", "type": "O"}
    )
    ids = [alice.posts.create_post({"channel_id": channel["id"], "message": f"m{i}"})["id"] for i in range(6)]
    # Oldest first: ids[0] .. ids[5].
    before = alice.posts.get_posts_for_channel(channel["id"], params={"before": ids[4], "per_page": 2})
    assert before["order"] == [ids[3], ids[2]]
    assert before["next_post_id"] == ids[4] and before["prev_post_id"] == ids[1]
    page_two = alice.posts.get_posts_for_channel(channel["id"], params={"before": ids[4], "per_page": 2, "page": 1})
    assert page_two["order"] == [ids[1], ids[0]]
    assert page_two["next_post_id"] == ids[2] and page_two["prev_post_id"] == ""
    after = alice.posts.get_posts_for_channel(channel["id"], params={"after": ids[1], "per_page": 2})
    assert after["order"] == [ids[3], ids[2]]
    assert after["prev_post_id"] == ids[1] and after["next_post_id"] == ids[4]
    newest = alice.posts.get_posts_for_channel(channel["id"], params={"after": ids[3], "per_page": 5})
    assert newest["order"] == [ids[5], ids[4]] and newest["next_post_id"] == ""
    edited_since = int(time.time() * 1000) - 1
    alice.posts.patch_post(ids[0], {"message": "m0 edited"})
    changed = alice.posts.get_posts_for_channel(channel["id"], params={"since": edited_since})
    assert changed["order"] == [ids[0]] and changed["posts"][ids[0]]["message"] == "m0 edited"


def test_posts_search_across_teams(server: Any, alice: Driver, bob: Driver) -> None:
    other = alice.teams.create_team({"name": "skunkworks", "display_name": "Skunkworks", "type": "O"})
    assert other["name"] == "skunkworks"
    assert "team_admin" in alice.teams.get_team_member(other["id"], alice.client.userid)["roles"].split()
    town_square = alice.channels.get_channel_by_name(other["id"], "town-square")
    post = alice.posts.create_post({"channel_id": town_square["id"], "message": "quasar telemetry online"})
    everywhere = httpx.post(
        f"{server.base_url}/api/v4/posts/search",
        json={"terms": "quasar"},
        headers={"Authorization": f"Bearer {alice.client.token}"},
    ).json()
    assert everywhere["order"] == [post["id"]]
    # Bob is not in that team: neither search shows the post.
    bobs = httpx.post(
        f"{server.base_url}/api/v4/posts/search",
        json={"terms": "quasar"},
        headers={"Authorization": f"Bearer {bob.client.token}"},
    ).json()
    assert bobs["order"] == [] and bobs["posts"] == {}
    with pytest.raises(NotEnoughPermissions):
        bob.posts.search_for_team_posts(other["id"], {"terms": "quasar"})
    # Leaving the team takes alice out of its channels, and its posts out of her results.
    alice.teams.remove_user_from_team(other["id"], alice.client.userid)
    again = httpx.post(
        f"{server.base_url}/api/v4/posts/search",
        json={"terms": "quasar"},
        headers={"Authorization": f"Bearer {alice.client.token}"},
    ).json()
    assert again["order"] == []


def test_search_dates_and_stop_words(server: Any, team: dict[str, Any], alice: Driver) -> None:
    channel = alice.channels.create_channel(
        {"team_id": team["id"], "name": "almanac", "display_name": "Almanac", "type": "O"}
    )
    post = alice.posts.create_post({"channel_id": channel["id"], "message": "the solstice almanac entry"})
    today = time.strftime("%Y-%m-%d", time.gmtime(post["create_at"] / 1000))
    assert search(alice, team["id"], f"solstice on:{today}") == [post["id"]]
    assert search(alice, team["id"], f"solstice before:{today}") == []
    assert search(alice, team["id"], f"solstice after:{today}") == []
    assert search(alice, team["id"], "solstice after:2000-01-01 before:2999-12-31") == [post["id"]]
    # Only stop words: nothing to look for, and no error.
    assert search(alice, team["id"], "the") == []
    assert search(alice, team["id"], "in:almanac") == [post["id"]]


def test_search_both_ways_to_read_matches(server: Any, team: dict[str, Any], alice: Driver, bob: Driver) -> None:
    """A word in more posts than ``search.RARE_MATCHES`` is read newest first; a rarer one and a phrase through
    the full-text index alone. Both answer the same: the caller's channels only, newest first, in pages."""
    mine = alice.channels.create_channel({"team_id": team["id"], "name": "hive", "display_name": "Hive", "type": "O"})
    theirs = bob.channels.create_channel({"team_id": team["id"], "name": "nest", "display_name": "Nest", "type": "P"})
    alice_id = alice.users.get_user("me")["id"]
    bob_id = bob.users.get_user("me")["id"]
    with psycopg.connect(server.database_url, autocommit=True) as db:
        # 1,200 posts saying "buzzword", a few of them "quiet queen"; bob's private channel has the same words.
        for channel_id, user_id, count in ((mine["id"], alice_id, 1200), (theirs["id"], bob_id, 50)):
            db.execute(
                "INSERT INTO posts (id, create_at, update_at, user_id, channel_id, message)"
                " SELECT substr(md5(%s || g::text), 1, 26), 1000 + g, 1000 + g, %s, %s,"
                " CASE WHEN g %% 300 = 0 THEN 'buzzword quiet queen' ELSE 'buzzword hum' END"
                " FROM generate_series(1, %s) AS g",
                (channel_id, user_id, channel_id, count),
            )
        newest = [r[0] for r in db.execute(
            "SELECT id FROM posts WHERE channel_id = %s ORDER BY create_at DESC, id DESC", (mine["id"],)
        )]  # fmt: skip
        queens = [r[0] for r in db.execute(
            "SELECT id FROM posts WHERE channel_id = %s AND message LIKE '%%queen%%' ORDER BY create_at DESC",
            (mine["id"],),
        )]  # fmt: skip
    assert search(alice, team["id"], "buzzword", per_page=30) == newest[:30]
    assert search(alice, team["id"], "buzzword", per_page=30, page=2) == newest[60:90]
    assert search(alice, team["id"], "queen") == queens
    assert search(alice, team["id"], '"quiet queen"') == queens
    assert len(queens) == 4 and set(queens).isdisjoint(search(bob, team["id"], "queen"))
