"""User statuses (``/api/v4/users/{user_id}/status``, ``/api/v4/users/status/ids``) against the real server:
presence from WebSocket connections, statuses set by hand, permissions, validation and ``status_change``."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.waiting import wait_until
from tests.workspace_server.wsclient import User, create_user, login, ok


@pytest.fixture(scope="module")
def admin_user(server: Any, admin: Any) -> User:
    return login(server.base_url, admin.username, admin.password)


@pytest.fixture(scope="module")
def team_id(admin_user: User, server: Any) -> str:
    return str(ok(admin_user.api.get(f"/teams/name/{server.team_name}"))["id"])


@pytest.fixture
def new_user(server: Any, admin_user: User, team_id: str) -> Callable[[], User]:
    return lambda: create_user(admin_user, server.base_url, f"s{uuid.uuid4().hex[:12]}", team_id)


def status_of(viewer: User, user_id: str) -> str:
    return str(ok(viewer.api.get(f"/users/{user_id}/status"))["status"])


def wait_status(viewer: User, user_id: str, expected: str, timeout: float = 10.0) -> None:
    wait_until(f"status {expected}", lambda: status_of(viewer, user_id) == expected, timeout)


def error_id(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.json()["status_code"] == status
    return str(response.json()["id"])


def test_a_user_is_online_while_a_websocket_is_open(new_user: Callable[[], User], connect: Any) -> None:
    user, viewer = new_user(), new_user()
    body = ok(viewer.api.get(f"/users/{user.id}/status"))
    assert body == {"user_id": user.id, "status": "offline", "manual": False, "last_activity_at": 0, "dnd_end_time": 0}
    first, second = connect(user), connect(user)
    wait_status(viewer, user.id, "online")
    first.close()
    # Still one connection open: still online (the second socket's ping proves it is served after the close).
    assert second.reply(second.send("ping"))["status"] == "OK"
    assert status_of(viewer, user.id) == "online"
    second.close()
    wait_status(viewer, user.id, "offline")


def test_statuses_by_ids(new_user: Callable[[], User], connect: Any) -> None:
    online, offline, viewer = new_user(), new_user(), new_user()
    connect(online)
    wait_status(viewer, online.id, "online")
    unknown = "x" * 26
    found = ok(viewer.api.post("/users/status/ids", json=[online.id, offline.id, unknown, online.id]))
    assert [(s["user_id"], s["status"]) for s in found] == [
        (online.id, "online"),
        (offline.id, "offline"),
        (unknown, "offline"),
    ]
    for bad in ([], ["short"], "not a list", [online.id] * 1001):
        assert error_id(viewer.api.post("/users/status/ids", json=bad), 400).startswith("api.context.invalid_body")


def test_a_manual_status_outlasts_connections_until_online_is_chosen(
    new_user: Callable[[], User], connect: Any
) -> None:
    user, viewer = new_user(), new_user()
    ws = connect(user)
    wait_status(viewer, user.id, "online")
    body = ok(user.api.put("/users/me/status", json={"user_id": user.id, "status": "away"}))
    assert body["status"] == "away" and body["manual"] is True and body["user_id"] == user.id
    # Connecting announced "online" to the user's own connection first.
    online = ws.wait_event(lambda e: e["event"] == "status_change")
    assert online["data"] == {"status": "online", "user_id": user.id}
    away = ws.wait_event(lambda e: e["event"] == "status_change")
    assert away["data"] == {"status": "away", "user_id": user.id} and away["broadcast"]["user_id"] == user.id
    ws.close()
    other = connect(user)
    assert other.reply(other.send("ping"))["status"] == "OK"
    assert status_of(viewer, user.id) == "away"
    body = ok(user.api.put(f"/users/{user.id}/status", json={"user_id": user.id, "status": "online"}))
    assert body["status"] == "online" and body["manual"] is False
    other.close()
    wait_status(viewer, user.id, "offline")


def test_do_not_disturb_until_a_time_then_the_previous_status(new_user: Callable[[], User], connect: Any) -> None:
    user, viewer = new_user(), new_user()
    connect(user)
    wait_status(viewer, user.id, "online")
    later = int(time.time()) + 3600
    body = ok(user.api.put("/users/me/status", json={"user_id": user.id, "status": "dnd", "dnd_end_time": later}))
    assert body["status"] == "dnd" and body["dnd_end_time"] == later - later % 60 and body["manual"] is True
    assert status_of(viewer, user.id) == "dnd"
    past = int(time.time()) - 120
    ok(user.api.put("/users/me/status", json={"user_id": user.id, "status": "dnd", "dnd_end_time": past}))
    assert ok(viewer.api.get(f"/users/{user.id}/status"))["status"] == "online"


def test_only_oneself_or_a_system_admin_sets_a_status(new_user: Callable[[], User], admin_user: User) -> None:
    user, other = new_user(), new_user()
    response = other.api.put(f"/users/{user.id}/status", json={"user_id": user.id, "status": "away"})
    assert error_id(response, 403) == "api.context.permissions.app_error"
    assert status_of(other, user.id) == "offline"
    body = ok(admin_user.api.put(f"/users/{user.id}/status", json={"user_id": user.id, "status": "dnd"}))
    assert body["status"] == "dnd"
    assert status_of(other, user.id) == "dnd"
    missing = "x" * 26
    response = admin_user.api.put(f"/users/{missing}/status", json={"user_id": missing, "status": "away"})
    assert error_id(response, 404) == "app.user.missing_account.const"


@pytest.mark.parametrize(
    "body",
    [
        {"status": "away"},
        {"user_id": "OTHER", "status": "away"},
        {"user_id": "ME", "status": "busy"},
        {"user_id": "ME", "status": ""},
        {"user_id": "ME", "status": "dnd", "dnd_end_time": -1},
        {"user_id": "ME", "status": "dnd", "dnd_end_time": 2**63},
        {"user_id": "ME", "status": 3},
    ],
)
def test_invalid_status_bodies_are_400_and_change_nothing(
    new_user: Callable[[], User], admin_user: User, body: dict[str, Any]
) -> None:
    user = new_user()
    replace = {"ME": user.id, "OTHER": admin_user.id}
    sent = {k: replace.get(v, v) if isinstance(v, str) else v for k, v in body.items()}
    assert error_id(user.api.put("/users/me/status", json=sent), 400).startswith("api.context.invalid_")
    assert ok(user.api.get("/users/me/status"))["last_activity_at"] == 0


def test_websocket_status_actions_agree_with_rest(new_user: Callable[[], User], connect: Any) -> None:
    user, dnd = new_user(), new_user()
    ok(dnd.api.put("/users/me/status", json={"user_id": dnd.id, "status": "dnd"}))
    ws = connect(user)
    reply = ws.reply(ws.send("get_statuses_by_ids", {"user_ids": [user.id, dnd.id]}))
    assert reply["data"] == {user.id: "online", dnd.id: "dnd"}
    everyone = ws.reply(ws.send("get_statuses"))["data"]
    assert everyone[user.id] == "online" and everyone[dnd.id] == "dnd"
    bad = ws.reply(ws.send("get_statuses_by_ids", {"user_ids": ["nope"]}))
    assert bad["status"] == "FAIL"
