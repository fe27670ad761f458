"""The Mattermost web app's start-up through the unmodified ``mattermost-redux`` (npm, 11.x, the web app's own data
layer) on Node 20 against the real workspace server, driven by ``mattermost_redux_startup.mjs``: the store it ends
with, and that none of its requests failed."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.clients.node_packages import install_node_packages, node_binary
from tests.workspace_server.wsclient import User, create_user, login, ok

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
SCRIPT = HERE / "mattermost_redux_startup.mjs"
PASSWORD = "redux start-up password"
# Requests of the start-up that this server does not serve yet (roles and their permissions): listed so that every
# other failure fails the test, and checked so that the list shrinks when they arrive.
NOT_YET_SERVED = {("POST", "/api/v4/roles/names")}


@pytest.fixture(scope="module")
def world(server: Any, admin: Any) -> dict[str, Any]:
    """Through the REST API: the user who starts the app, a colleague who posted in town-square and set "dnd",
    a private channel of theirs the user is not in, and a preference the user saved earlier."""
    admin_user = login(server.base_url, admin.username, admin.password)
    team_id = ok(admin_user.api.get(f"/teams/name/{server.team_name}"))["id"]
    me: User = create_user(admin_user, server.base_url, f"r{uuid.uuid4().hex[:10]}", team_id, password=PASSWORD)
    colleague = create_user(admin_user, server.base_url, f"c{uuid.uuid4().hex[:10]}", team_id)
    town_square = ok(me.api.get(f"/teams/{team_id}/channels/name/town-square"))["id"]
    posted = [
        ok(colleague.api.post("/posts", json={"channel_id": town_square, "message": f"hello {i}"}), 201)["id"]
        for i in range(3)
    ]
    private = {"team_id": team_id, "name": "colleague-only", "display_name": "Colleague only", "type": "P"}
    hidden = ok(colleague.api.post("/channels", json=private), 201)["id"]
    ok(colleague.api.put("/users/me/status", json={"user_id": colleague.id, "status": "dnd"}))
    saved = {"user_id": me.id, "category": "display_settings", "name": "use_military_time", "value": "true"}
    ok(me.api.put("/users/me/preferences", json=[saved]))
    return {
        "me": me,
        "colleague": colleague,
        "team_id": team_id,
        "town_square": town_square,
        "posted": posted,
        "hidden": hidden,
        "admin": admin_user,
    }


@pytest.fixture(scope="module")
def startup(server: Any, world: dict[str, Any]) -> dict[str, Any]:
    install_node_packages()
    env = os.environ | {
        "CANOPY_URL": server.base_url,
        "CANOPY_TEAM": server.team_name,
        "CANOPY_USER": world["me"].username,
        "CANOPY_PASSWORD": PASSWORD,
        "CANOPY_STATUS_IDS": f"{world['me'].id},{world['colleague'].id}",
    }
    done = subprocess.run([node_binary(), str(SCRIPT)], cwd=HERE, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines, f"no output; stderr:\n{done.stderr}"
    result: dict[str, Any] = json.loads(lines[-1])
    assert "fatal" not in result, f"{result['fatal']}\n{done.stderr[-3000:]}"
    return result


def test_no_startup_request_failed(startup: dict[str, Any]) -> None:
    failed = [r for r in startup["requests"] if r["status"] is None or r["status"] >= 400]
    unexpected = [r for r in failed if (r["method"], r["path"]) not in NOT_YET_SERVED]
    assert unexpected == [], unexpected
    assert {(r["method"], r["path"]) for r in failed} <= NOT_YET_SERVED
    called = {(r["method"], r["path"]) for r in startup["requests"]}
    for route in [
        ("GET", "/api/v4/users/me/preferences"),
        ("GET", "/api/v4/license/client"),
        ("POST", "/api/v4/users/status/ids"),
        ("GET", "/api/v4/config/client"),
        ("GET", "/api/v4/users/me"),
        ("GET", "/api/v4/users/me/teams"),
        ("GET", "/api/v4/users/me/teams/members"),
        ("GET", "/api/v4/users/me/teams/unread"),
        ("GET", "/api/v4/limits/server"),
    ]:
        assert route in called, route
    # The actions the app awaits report no error.
    assert {name: a for name, a in startup["actions"].items() if "error" in a} == {}


def test_the_store_has_me_my_team_config_and_licence(startup: dict[str, Any], world: dict[str, Any]) -> None:
    store = startup["store"]
    assert store["users"]["current_user_id"] == world["me"].id and store["users"]["me"] == world["me"].username
    assert store["teams"]["current_team_id"] == world["team_id"]
    assert store["teams"]["my_members"] == [world["team_id"]] and store["teams"]["teams"] == ["acme"]
    assert store["general"]["config_version"] == "9.11.0" and store["general"]["version"].startswith("9.11.0.")
    assert store["general"]["license"] == {"IsLicensed": "false"}


def test_the_store_has_my_channels_and_memberships(startup: dict[str, Any], world: dict[str, Any]) -> None:
    channels = startup["store"]["channels"]
    assert channels["current_channel_id"] == world["town_square"]
    names = {c["name"] for c in channels["channels"]}
    assert {"town-square", "off-topic"} <= names and "colleague-only" not in names
    assert world["hidden"] not in channels["my_members"] and world["hidden"] not in channels["in_team"]
    assert set(channels["in_team"]) == {c["id"] for c in channels["channels"]}
    assert set(channels["my_members"]) == set(channels["in_team"])
    assert {m["user_id"] for m in channels["my_members"].values()} == {world["me"].id}


def test_the_store_has_my_preferences(startup: dict[str, Any], world: dict[str, Any]) -> None:
    saved = {"user_id": world["me"].id, "category": "display_settings", "name": "use_military_time", "value": "true"}
    assert startup["store"]["preferences"] == {"display_settings--use_military_time": saved}


def test_the_store_has_statuses(startup: dict[str, Any], world: dict[str, Any]) -> None:
    users = startup["store"]["users"]
    colleague = world["colleague"].id
    assert users["statuses"][colleague] == "dnd" and users["is_manual_status"][colleague] is True
    # The app opens no WebSocket in this test, and presence follows WebSockets: its user reads as offline.
    assert users["statuses"][world["me"].id] == "offline"


def test_the_store_has_the_first_page_of_posts(startup: dict[str, Any], world: dict[str, Any]) -> None:
    posts = startup["store"]["posts"]
    [block] = posts["in_channel"]
    assert block["recent"] is True and block["oldest"] is True
    assert block["order"][:3] == list(reversed(world["posted"]))
    assert [posts["messages"][p] for p in block["order"][:3]] == ["hello 2", "hello 1", "hello 0"]
    # The posts' author's profile came with them.
    assert world["colleague"].username in startup["store"]["users"]["profiles"]
