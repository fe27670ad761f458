"""Incoming webhooks: created through mattermostdriver, called at /hooks/{id} with JSON or payload= forms."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from mattermostdriver import Driver
from mattermostdriver.exceptions import NotEnoughPermissions

from tests.workspace_server.conftest import ServerProcess
from tests.workspace_server.content_helpers import driver, make_user


@pytest.fixture(scope="module")
def admin_client(server: Any, admin: Any) -> Driver:
    return driver(server, admin.username, admin.password)


@pytest.fixture(scope="module")
def team(server: Any, admin_client: Driver) -> dict[str, Any]:
    return admin_client.teams.get_team_by_name(server.team_name)


def call(server: Any, hook_id: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{server.base_url}/hooks/{hook_id}", timeout=10, **kwargs)


def newest(client: Driver, channel_id: str) -> dict[str, Any]:
    listing = client.posts.get_posts_for_channel(channel_id, params={"per_page": 1})
    post: dict[str, Any] = listing["posts"][listing["order"][0]]
    return post


def test_webhook_posts_as_its_creator(server: Any, admin_client: Driver, team: dict[str, Any]) -> None:
    town_square = admin_client.channels.get_channel_by_name(team["id"], "town-square")
    hook = admin_client.webhooks.create_incoming_hook(
        {"channel_id": town_square["id"], "display_name": "CI", "description": "builds", "username": "ci-bot"}
    )
    assert hook["channel_id"] == town_square["id"] and hook["team_id"] == team["id"]
    assert hook["user_id"] == admin_client.client.userid and hook["display_name"] == "CI"
    assert hook["id"] in {h["id"] for h in admin_client.webhooks.list_incoming_hooks({"team_id": team["id"]})}
    assert admin_client.webhooks.get_incoming_hook(hook["id"])["username"] == "ci-bot"

    response = admin_client.webhooks.call_webhook(hook["id"], {"text": "Build #42 passed", "username": "imposter"})
    assert response.status_code == 200 and response.text == "ok"
    assert response.headers["content-type"].startswith("text/plain")
    post = newest(admin_client, town_square["id"])
    assert post["message"] == "Build #42 passed" and post["user_id"] == admin_client.client.userid
    assert post["props"]["from_webhook"] == "true"
    assert "override_username" not in post["props"]  # overrides are off unless the server allows them

    form = call(server, hook["id"], data={"payload": json.dumps({"text": "from a form"})})
    assert form.status_code == 200 and newest(admin_client, town_square["id"])["message"] == "from a form"
    multipart = call(server, hook["id"], files={"payload": (None, json.dumps({"text": "from multipart"}))})
    assert multipart.status_code == 200 and newest(admin_client, town_square["id"])["message"] == "from multipart"

    for body, error in (
        ({"text": ""}, "web.incoming_webhook.text.app_error"),
        ({"username": "no text"}, "web.incoming_webhook.text.app_error"),
    ):
        refused = call(server, hook["id"], json=body)
        assert refused.status_code == 400 and refused.json()["id"] == error
    garbled = call(server, hook["id"], content=b"payload=%7Bnot-json")
    assert garbled.status_code == 400 and garbled.json()["id"] == "web.incoming_webhook.parse.app_error"
    unknown = call(server, "x" * 26, json={"text": "hi"})
    assert unknown.status_code == 400 and unknown.json()["id"] == "web.incoming_webhook.invalid.app_error"

    admin_client.webhooks.client.delete(f"/hooks/incoming/{hook['id']}")
    gone = call(server, hook["id"], json={"text": "still there?"})
    assert gone.status_code == 400 and newest(admin_client, town_square["id"])["message"] == "from multipart"


def test_channel_overrides_stay_within_the_creators_channels(
    server: Any, admin_client: Driver, team: dict[str, Any]
) -> None:
    hank_user, password = make_user(admin_client, team["id"], "hank")
    hank = driver(server, "hank", password)
    bob_user, _ = make_user(admin_client, team["id"], "bobby")
    town_square = admin_client.channels.get_channel_by_name(team["id"], "town-square")
    off_topic = admin_client.channels.get_channel_by_name(team["id"], "off-topic")
    ops = admin_client.channels.create_channel(
        {"team_id": team["id"], "name": "ops", "display_name": "Ops", "type": "P"}
    )
    # Regular members do not manage hooks; a system admin makes one that hank owns.
    with pytest.raises(NotEnoughPermissions):
        hank.webhooks.create_incoming_hook({"channel_id": town_square["id"]})
    hook = admin_client.webhooks.create_incoming_hook({"channel_id": town_square["id"], "user_id": hank_user["id"]})
    assert hook["user_id"] == hank_user["id"]
    assert [h["id"] for h in hank.webhooks.list_incoming_hooks({})] == [hook["id"]]

    moved = call(server, hook["id"], json={"text": "over here", "channel": "off-topic"})
    assert moved.status_code == 200
    post = newest(admin_client, off_topic["id"])
    assert post["message"] == "over here" and post["user_id"] == hank_user["id"]
    # Hank is not in ops: the hook may not post there, and nothing appears.
    refused = call(server, hook["id"], json={"text": "sneaky", "channel": "ops"})
    assert refused.status_code == 403 and refused.json()["id"] == "web.incoming_webhook.permissions.app_error"
    assert admin_client.posts.get_posts_for_channel(ops["id"])["order"] == []
    missing = call(server, hook["id"], json={"text": "where?", "channel": "nowhere"})
    assert missing.status_code == 400
    # A direct message to a user, from the hook's creator.
    direct = call(server, hook["id"], json={"text": "psst", "channel": "@bobby"})
    assert direct.status_code == 200
    dm = hank.channels.create_direct_message_channel([hank_user["id"], bob_user["id"]])
    assert newest(hank, dm["id"])["message"] == "psst"

    locked = admin_client.webhooks.create_incoming_hook(
        {"channel_id": town_square["id"], "user_id": hank_user["id"], "channel_locked": True}
    )
    blocked = call(server, locked["id"], json={"text": "elsewhere", "channel": "off-topic"})
    assert blocked.status_code == 403 and blocked.json()["id"] == "web.incoming_webhook.channel_locked.app_error"
    same = call(server, locked["id"], json={"text": "home", "channel": "town-square"})
    assert same.status_code == 200

    # Once hank is deactivated, his hooks stop posting.
    admin_client.users.update_user_active_status(hank_user["id"], {"active": False})
    dead = call(server, hook["id"], json={"text": "ghost"})
    assert dead.status_code == 403 and newest(admin_client, town_square["id"])["message"] == "home"


def test_overrides_when_the_server_allows_them(
    create_database: Callable[[str], str],
    spawn_server: Callable[..., ServerProcess],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    running = spawn_server(
        create_database("ws_hooks"),
        tmp_path_factory.mktemp("ws_hooks"),
        WS_ENABLE_POST_USERNAME_OVERRIDE="true",
        WS_ENABLE_POST_ICON_OVERRIDE="true",
    )
    running.wait_ready()
    created = httpx.put(
        f"{running.base_url}/api/v4/canopy/initial_admin",
        headers={"Authorization": f"Bearer {running.control_token}"},
        json={"email": "a@acme.test", "username": "boss", "password_hash": PasswordHasher().hash("boss-password")},
    )
    assert created.status_code == 200
    boss = driver(running, "boss", "boss-password")
    channel = boss.channels.get_channel_by_name_and_team_name(running.team_name, "town-square")
    hook = boss.webhooks.create_incoming_hook(
        {"channel_id": channel["id"], "username": "default-name", "icon_url": "https://x.test/i.png"}
    )
    assert call(running, hook["id"], json={"text": "named", "username": "Jenkins"}).status_code == 200
    props = newest(boss, channel["id"])["props"]
    assert props["override_username"] == "Jenkins" and props["override_icon_url"] == "https://x.test/i.png"
    assert call(running, hook["id"], json={"text": "default"}).status_code == 200
    assert newest(boss, channel["id"])["props"]["override_username"] == "default-name"
