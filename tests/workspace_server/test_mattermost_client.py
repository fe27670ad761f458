"""The unmodified Mattermost Python client (mattermostdriver) against the workspace server."""

from __future__ import annotations

from typing import Any

import pytest
from mattermostdriver import Driver
from mattermostdriver.exceptions import NotEnoughPermissions, ResourceNotFound


def driver(server: Any, login_id: str, password: str) -> Driver:
    client = Driver(
        {
            "url": "127.0.0.1",
            "port": server.port,
            "scheme": "http",
            "basepath": "/api/v4",
            "login_id": login_id,
            "password": password,
            "timeout": 10,
        }
    )
    client.login()
    return client


@pytest.fixture(scope="module")
def admin_client(server: Any, admin: Any) -> Driver:
    return driver(server, admin.username, admin.password)


def test_initial_admin_logs_in_and_posts_to_town_square(server: Any, admin: Any, admin_client: Driver) -> None:
    assert admin_client.client.userid == admin.user["id"]
    me = admin_client.users.get_user("me")
    assert me["username"] == admin.username and me["email"] == admin.email
    assert me["roles"] == "system_admin system_user"
    assert "password" not in me

    team = admin_client.teams.get_team_by_name(server.team_name)
    assert team["display_name"] == "Acme Inc" and team["type"] == "O"
    member = admin_client.teams.get_team_member(team["id"], admin.user["id"])
    assert "team_admin" in member["roles"].split()

    town_square = admin_client.channels.get_channel_by_name(team["id"], "town-square")
    assert town_square["display_name"] == "Town Square" and town_square["type"] == "O"
    off_topic = admin_client.channels.get_channel_by_name_and_team_name(server.team_name, "off-topic")
    assert off_topic["display_name"] == "Off-Topic" and off_topic["team_id"] == team["id"]
    mine = admin_client.channels.get_channels_for_user("me", team["id"])
    assert {"town-square", "off-topic"} <= {c["name"] for c in mine}  # and those other tests made

    post = admin_client.posts.create_post({"channel_id": town_square["id"], "message": "Hello #canopy world"})
    assert post["user_id"] == admin.user["id"] and post["channel_id"] == town_square["id"]
    assert post["hashtags"] == "#canopy" and post["root_id"] == "" and post["type"] == ""
    assert len(post["id"]) == 26

    listing = admin_client.posts.get_posts_for_channel(town_square["id"])
    assert listing["order"][0] == post["id"]
    assert listing["posts"][post["id"]]["message"] == "Hello #canopy world"
    assert admin_client.posts.get_post(post["id"])["message"] == "Hello #canopy world"
    channel = admin_client.channels.get_channel(town_square["id"])
    assert channel["total_msg_count"] >= 1 and channel["last_post_at"] >= post["create_at"]


def test_replies_count_on_their_thread(server: Any, admin_client: Driver) -> None:
    team = admin_client.teams.get_team_by_name(server.team_name)
    channel = admin_client.channels.create_channel(
        {"team_id": team["id"], "name": "threads", "display_name": "Threads", "type": "O"}
    )
    root = admin_client.posts.create_post({"channel_id": channel["id"], "message": "root"})
    reply = admin_client.posts.create_post({"channel_id": channel["id"], "message": "reply", "root_id": root["id"]})
    assert reply["root_id"] == root["id"] and reply["reply_count"] == 1
    listing = admin_client.posts.get_posts_for_channel(channel["id"])
    assert listing["order"] == [reply["id"], root["id"]]
    assert listing["posts"][root["id"]]["reply_count"] == 1
    # A reply to a reply, or to a post of another channel, is refused.
    with pytest.raises(Exception, match="Invalid RootId"):
        admin_client.posts.create_post({"channel_id": channel["id"], "message": "x", "root_id": reply["id"]})


def test_channel_pages_link_to_their_neighbours(server: Any, admin_client: Driver) -> None:
    team = admin_client.teams.get_team_by_name(server.team_name)
    channel = admin_client.channels.create_channel(
        {"team_id": team["id"], "name": "paging", "display_name": "Paging", "type": "O"}
    )
    ids = [admin_client.posts.create_post({"channel_id": channel["id"], "message": str(i)})["id"] for i in range(5)]
    newest_first = ids[::-1]
    first = admin_client.posts.get_posts_for_channel(channel["id"], params={"page": 0, "per_page": 2})
    assert first["order"] == newest_first[:2]
    assert first["next_post_id"] == "" and first["prev_post_id"] == newest_first[2]
    second = admin_client.posts.get_posts_for_channel(channel["id"], params={"page": 1, "per_page": 2})
    assert second["order"] == newest_first[2:4]
    assert second["next_post_id"] == newest_first[1] and second["prev_post_id"] == newest_first[4]
    last = admin_client.posts.get_posts_for_channel(channel["id"], params={"page": 2, "per_page": 2})
    assert last["order"] == newest_first[4:] and last["prev_post_id"] == ""


def test_second_user_cannot_read_a_private_channel_it_is_not_in(server: Any, admin_client: Driver) -> None:
    team = admin_client.teams.get_team_by_name(server.team_name)
    bob = admin_client.users.create_user({"email": "bob@acme.test", "username": "bob", "password": "bob-password"})
    assert bob["roles"] == "system_user"
    admin_client.teams.add_user_to_team(team["id"], {"team_id": team["id"], "user_id": bob["id"]})
    secret = admin_client.channels.create_channel(
        {"team_id": team["id"], "name": "secret", "display_name": "Secret", "type": "P"}
    )
    admin_client.posts.create_post({"channel_id": secret["id"], "message": "for admins only"})
    town_square = admin_client.channels.get_channel_by_name(team["id"], "town-square")
    welcome = admin_client.posts.create_post({"channel_id": town_square["id"], "message": "welcome bob"})

    bob_client = driver(server, "bob@acme.test", "bob-password")
    # Joining the team put bob in its default channels: he reads and writes town-square.
    assert welcome["id"] in bob_client.posts.get_posts_for_channel(town_square["id"])["order"]
    bob_client.posts.create_post({"channel_id": town_square["id"], "message": "hi from bob"})

    # The private channel does not exist for him by name, and is forbidden by id.
    with pytest.raises(ResourceNotFound):
        bob_client.channels.get_channel_by_name(team["id"], "secret")
    with pytest.raises(NotEnoughPermissions):
        bob_client.channels.get_channel(secret["id"])
    with pytest.raises(NotEnoughPermissions):
        bob_client.posts.get_posts_for_channel(secret["id"])
    with pytest.raises(NotEnoughPermissions):
        bob_client.posts.create_post({"channel_id": secret["id"], "message": "let me in"})
    with pytest.raises(NotEnoughPermissions):
        bob_client.channels.add_user(secret["id"], {"user_id": bob["id"]})

    # An open channel he is not in: as in Mattermost, team members read it but post only after joining.
    news = admin_client.channels.create_channel(
        {"team_id": team["id"], "name": "news", "display_name": "News", "type": "O"}
    )
    admin_client.posts.create_post({"channel_id": news["id"], "message": "extra extra"})
    assert [p["message"] for p in bob_client.posts.get_posts_for_channel(news["id"])["posts"].values()] == [
        "extra extra"
    ]
    with pytest.raises(NotEnoughPermissions):
        bob_client.posts.create_post({"channel_id": news["id"], "message": "me too"})
    bob_client.channels.add_user(news["id"], {"user_id": bob["id"]})
    bob_client.posts.create_post({"channel_id": news["id"], "message": "me too"})
    with pytest.raises(Exception, match="already exists"):
        bob_client.channels.create_channel({"team_id": team["id"], "name": "news", "display_name": "News 2"})

    # Once the admin adds him to the private channel, he can read it.
    admin_client.channels.add_user(secret["id"], {"user_id": bob["id"]})
    listing = bob_client.posts.get_posts_for_channel(secret["id"])
    assert [p["message"] for p in listing["posts"].values()] == ["for admins only"]
    member = bob_client.channels.get_channel_member(secret["id"], bob["id"])
    assert member["roles"] == "channel_user"


def test_signup_is_closed_by_default(server: Any) -> None:
    anonymous = Driver({"url": "127.0.0.1", "port": server.port, "scheme": "http", "basepath": "/api/v4"})
    with pytest.raises(NotEnoughPermissions, match="does not allow open signups"):
        anonymous.users.create_user({"email": "eve@acme.test", "username": "eve", "password": "eve-password"})
