"""The unmodified ``@mattermost/client`` (npm, 11.x) on Node 20 against the real workspace server: REST calls
and its WebSocket client, driven by ``mattermost_client_acceptance.mjs``.

The test installs the pinned npm packages itself (see :mod:`tests.clients.node_packages`)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.clients.node_packages import install_node_packages, node_binary
from tests.workspace_server.wsclient import User, create_user, login, ok

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
SCRIPT = HERE / "mattermost_client_acceptance.mjs"
PASSWORD = "js client password"


@pytest.fixture(scope="module")
def run(server: Any, admin: Any) -> dict[str, Any]:
    install_node_packages()
    node = node_binary()
    admin_user: User = login(server.base_url, admin.username, admin.password)
    team_id = ok(admin_user.api.get(f"/teams/name/{server.team_name}"))["id"]
    for name in ("jsa", "jsb"):
        create_user(admin_user, server.base_url, name, team_id, password=PASSWORD)
    env = os.environ | {
        "CANOPY_URL": server.base_url,
        "CANOPY_TEAM": server.team_name,
        "CANOPY_USER_A": "jsa",
        "CANOPY_PASSWORD_A": PASSWORD,
        "CANOPY_USER_B": "jsb",
        "CANOPY_PASSWORD_B": PASSWORD,
    }
    done = subprocess.run([node, str(SCRIPT)], cwd=HERE, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines, f"no output; stderr:\n{done.stderr}"
    result: dict[str, Any] = json.loads(lines[-1])
    result["stderr"] = done.stderr
    assert "fatal" not in result, result["fatal"]
    return result


def step(run: dict[str, Any], name: str) -> Any:
    """The value of a step, which must have succeeded."""
    outcome = run["steps"].get(name)
    assert outcome is not None, f"step {name} did not run: {run['steps']}"
    assert outcome["ok"], f"{name}: {outcome}\n{run['stderr'][-3000:]}"
    return outcome["value"]


def test_login_team_channel_join(run: dict[str, Any]) -> None:
    ids = step(run, "login")
    assert step(run, "get_team")["name"] == "acme"
    assert step(run, "websocket_connect")["seq"] == 0
    assert step(run, "create_channel")["type"] == "O"
    assert step(run, "join_channel")["user_id"] == ids["b"]


def test_post_and_thread_reply_arrive_over_the_websocket(run: dict[str, Any]) -> None:
    ids = step(run, "login")
    post = step(run, "post")
    assert post["event_post_is_string"] is True and post["sender"] == "@jsa"
    reply = step(run, "thread_reply")
    assert reply["root_id"] == post["id"] and reply["mentions"] == [ids["a"]]


def test_thread(run: dict[str, Any]) -> None:
    thread = step(run, "get_thread")
    assert set(thread["order"]) == {step(run, "post")["id"], step(run, "thread_reply")["id"]}
    assert thread["reply_in_thread"] is True


def test_typing_arrives(run: dict[str, Any]) -> None:
    typing = step(run, "typing")
    assert typing["channel_id"] == step(run, "create_channel")["id"] and typing["parent_id"] == ""


def test_unread_counts_and_channel_viewed(run: dict[str, Any]) -> None:
    unread = step(run, "unread")
    # jsb wrote the reply (a mention of jsa) and the reaction; jsa's own posts are read.
    assert unread["before"]["mention_count"] == 1 and unread["before"]["msg_count"] >= 1
    assert unread["teams"] and unread["teams"][0]["mention_count"] >= 1
    assert unread["viewed_status"] == "OK" and unread["event_user"] == step(run, "login")["a"]
    assert unread["after"] == {"msg_count": 0, "mention_count": 0}
    assert unread["member"]["mention_count"] == 0


def test_websocket_ping_and_sequence(run: dict[str, Any]) -> None:
    assert step(run, "ping") == {"status": "OK", "text": "pong"}
    for label, socket in run["sockets"].items():
        # One connection each, never torn down for a sequence gap, seq 0, 1, 2, ...
        assert socket["hellos"] == 1 and socket["missed"] == 0 and socket["reconnects"] == 0, (label, socket)
        assert socket["seqs"] == list(range(len(socket["seqs"]))), (label, socket)
    assert "missed websocket event" not in run["stderr"]


def test_reaction_added_arrives(run: dict[str, Any]) -> None:
    reaction = step(run, "reaction")
    assert reaction["emoji_name"] == "thumbsup" and reaction["event_reaction"]["emoji_name"] == "thumbsup"
    assert reaction["reactions"] == 1


def test_file_upload_and_attach(run: dict[str, Any]) -> None:
    upload = step(run, "file_upload")
    assert upload["post_file_ids"] == [upload["file_id"]]
    assert upload["infos"] == [{"id": upload["file_id"], "name": "hello.txt", "size": 33}]


def test_search(run: dict[str, Any]) -> None:
    found = step(run, "search")
    assert step(run, "post")["id"] in found["order"]
