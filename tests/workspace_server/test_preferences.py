"""User preferences (``/api/v4/users/{user_id}/preferences``) against the real server: reading and writing one's
own, the system admin's reach, Mattermost's validation, and the WebSocket events to the user's connections."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from tests.workspace_server.wsclient import User, create_user, login, ok


@pytest.fixture(scope="module")
def admin_user(server: Any, admin: Any) -> User:
    return login(server.base_url, admin.username, admin.password)


@pytest.fixture(scope="module")
def team_id(admin_user: User, server: Any) -> str:
    return str(ok(admin_user.api.get(f"/teams/name/{server.team_name}"))["id"])


@pytest.fixture
def user(server: Any, admin_user: User, team_id: str) -> User:
    """A fresh user per test, so that no test sees another's preferences."""
    return create_user(admin_user, server.base_url, f"p{uuid.uuid4().hex[:12]}", team_id)


def pref(user: User, category: str, name: str, value: str) -> dict[str, str]:
    return {"user_id": user.id, "category": category, "name": name, "value": value}


def error_id(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"id", "message", "detailed_error", "request_id", "status_code"}
    assert body["status_code"] == status
    return str(body["id"])


def test_put_then_get_all_by_category_and_by_name(user: User) -> None:
    assert ok(user.api.get("/users/me/preferences")) == []
    prefs = [pref(user, "display_settings", "use_military_time", "true"), pref(user, "tutorial_step", user.id, "2")]
    assert ok(user.api.put("/users/me/preferences", json=prefs)) == {"status": "OK"}
    assert ok(user.api.get(f"/users/{user.id}/preferences")) == prefs
    assert ok(user.api.get("/users/me/preferences/display_settings")) == prefs[:1]
    assert ok(user.api.get("/users/me/preferences/display_settings/name/use_military_time")) == prefs[0]
    # A second PUT replaces the value (an upsert).
    ok(user.api.put("/users/me/preferences", json=[pref(user, "display_settings", "use_military_time", "false")]))
    assert ok(user.api.get("/users/me/preferences/display_settings/name/use_military_time"))["value"] == "false"


def test_missing_category_is_404_and_missing_name_is_400_as_mattermost(user: User) -> None:
    assert error_id(user.api.get("/users/me/preferences/nothing_here"), 404) == (
        "api.preference.preferences_category.get.app_error"
    )
    response = user.api.get("/users/me/preferences/nothing_here/name/nope")
    assert error_id(response, 400) == "app.preference.get.app_error"


def test_delete_removes_only_the_named_preferences(user: User) -> None:
    keep, drop = pref(user, "favorite_channel", "a" * 26, "true"), pref(user, "favorite_channel", "b" * 26, "true")
    ok(user.api.put("/users/me/preferences", json=[keep, drop]))
    assert ok(user.api.post("/users/me/preferences/delete", json=[drop])) == {"status": "OK"}
    assert ok(user.api.get("/users/me/preferences")) == [keep]


def test_another_users_preferences_are_forbidden_to_users_and_open_to_admins(
    server: Any, admin_user: User, team_id: str, user: User
) -> None:
    other = create_user(admin_user, server.base_url, f"o{uuid.uuid4().hex[:12]}", team_id)
    mine = pref(user, "display_settings", "name_format", "username")
    ok(user.api.put("/users/me/preferences", json=[mine]))
    forbidden = "api.context.permissions.app_error"
    assert error_id(other.api.get(f"/users/{user.id}/preferences"), 403) == forbidden
    assert error_id(other.api.get(f"/users/{user.id}/preferences/display_settings"), 403) == forbidden
    assert error_id(other.api.put(f"/users/{user.id}/preferences", json=[mine]), 403) == forbidden
    assert error_id(other.api.post(f"/users/{user.id}/preferences/delete", json=[mine]), 403) == forbidden
    # Writing preferences that name another user through one's own path: Mattermost's own 403.
    response = other.api.put("/users/me/preferences", json=[mine])
    assert error_id(response, 403) == "api.preference.update_preferences.set.app_error"
    response = other.api.post("/users/me/preferences/delete", json=[mine])
    assert error_id(response, 403) == "api.preference.delete_preferences.delete.app_error"
    assert ok(user.api.get("/users/me/preferences")) == [mine]
    # A system admin reads and writes anyone's.
    assert ok(admin_user.api.get(f"/users/{user.id}/preferences")) == [mine]
    changed = mine | {"value": "full_name"}
    ok(admin_user.api.put(f"/users/{user.id}/preferences", json=[changed]))
    assert ok(user.api.get("/users/me/preferences")) == [changed]
    missing = "x" * 26
    response = admin_user.api.put(f"/users/{missing}/preferences", json=[changed | {"user_id": missing}])
    assert error_id(response, 404) == "app.user.missing_account.const"


def test_unauthenticated_requests_are_401(server: Any) -> None:
    response = httpx.get(f"{server.base_url}/api/v4/users/me/preferences")
    assert error_id(response, 401) == "api.context.session_expired.app_error"


@pytest.mark.parametrize(
    ("category", "name", "value", "expected"),
    [
        ("", "n", "v", "model.preference.is_valid.category.app_error"),
        ("c" * 33, "n", "v", "model.preference.is_valid.category.app_error"),
        ("é" * 17, "n", "v", "model.preference.is_valid.category.app_error"),  # 34 bytes
        ("c", "n" * 33, "v", "model.preference.is_valid.name.app_error"),
        ("c", "n", "v" * 20_001, "model.preference.is_valid.value.app_error"),
        ("theme", "", "not json", "model.preference.is_valid.theme.app_error"),
        ("theme", "", '{"sidebarBg": 3}', "model.preference.is_valid.theme.app_error"),
        (
            "sidebar_settings",
            "limit_visible_dms_gms",
            "41",
            "model.preference.is_valid.limit_visible_dms_gms.app_error",
        ),
        ("sidebar_settings", "limit_visible_dms_gms", "0", "model.preference.is_valid.limit_visible_dms_gms.app_error"),
        ("c\x00", "n", "v", "api.context.invalid_body_param.app_error"),
        ("c", "n", "v\x00", "api.context.invalid_body_param.app_error"),
    ],
)
def test_invalid_preferences_are_400_and_nothing_is_written(
    user: User, category: str, name: str, value: str, expected: str
) -> None:
    good = pref(user, "display_settings", "colorize_usernames", "true")
    response = user.api.put("/users/me/preferences", json=[good, pref(user, category, name, value)])
    assert error_id(response, 400) == expected
    assert ok(user.api.get("/users/me/preferences")) == []


def test_limits_and_body_shape(user: User) -> None:
    too_many = [pref(user, "c", f"n{i}", "v") for i in range(101)]
    assert (
        error_id(user.api.put("/users/me/preferences", json=too_many), 400)
        == "api.context.invalid_body_param.app_error"
    )
    assert error_id(user.api.put("/users/me/preferences", json={"category": "c"}), 400).startswith("api.context.")
    assert error_id(user.api.put("/users/me/preferences", json=[{"value": 3}]), 400).startswith("api.context.")
    assert ok(user.api.put("/users/me/preferences", json=[pref(user, "c", "n", "v" * 20_000)])) == {"status": "OK"}
    assert ok(user.api.put("/users/me/preferences", json=[pref(user, "limits", "n", "é" * 20_000)])) == {"status": "OK"}


def test_theme_colours_are_cleaned_as_mattermost_does(user: User) -> None:
    theme = {"sidebarBg": "#145dbf", "centerChannelBg": "red; background: url(x)", "type": "Custom", "image": "x"}
    ok(user.api.put("/users/me/preferences", json=[pref(user, "theme", "", json.dumps(theme))]))
    stored = json.loads(ok(user.api.get("/users/me/preferences/theme"))[0]["value"])
    assert stored == theme | {"centerChannelBg": "#ffffff"}


def test_flagging_a_post_needs_a_post_one_may_read(server: Any, admin_user: User, team_id: str, user: User) -> None:
    private = {"team_id": team_id, "name": "prefs-private", "display_name": "Private", "type": "P"}
    channel = ok(admin_user.api.post("/channels", json=private), 201)["id"]
    secret = ok(admin_user.api.post("/posts", json={"channel_id": channel, "message": "secret"}), 201)["id"]
    town_square = ok(user.api.get(f"/teams/{team_id}/channels/name/town-square"))["id"]
    public = ok(user.api.post("/posts", json={"channel_id": town_square, "message": "save me"}), 201)["id"]
    response = user.api.put("/users/me/preferences", json=[pref(user, "flagged_post", secret, "true")])
    assert error_id(response, 403) == "api.context.permissions.app_error"
    response = user.api.put("/users/me/preferences", json=[pref(user, "flagged_post", "y" * 26, "true")])
    assert error_id(response, 400) == "api.context.invalid_body_param.app_error"
    ok(user.api.put("/users/me/preferences", json=[pref(user, "flagged_post", public, "true")]))
    assert [p["name"] for p in ok(user.api.get("/users/me/preferences/flagged_post"))] == [public]


def test_changes_and_deletions_reach_only_the_users_own_connections(
    server: Any, admin_user: User, team_id: str, user: User, connect: Any
) -> None:
    other = create_user(admin_user, server.base_url, f"w{uuid.uuid4().hex[:12]}", team_id)
    mine, theirs = connect(user), connect(other)
    saved = [pref(user, "display_settings", "message_display", "compact")]
    ok(user.api.put("/users/me/preferences", json=saved))
    changed = mine.wait_event(lambda e: e["event"] == "preferences_changed")
    assert changed["broadcast"]["user_id"] == user.id and json.loads(changed["data"]["preferences"]) == saved
    ok(user.api.post("/users/me/preferences/delete", json=saved))
    deleted = mine.wait_event(lambda e: e["event"] == "preferences_deleted")
    assert json.loads(deleted["data"]["preferences"]) == saved
    # The other user's connection got neither (a sentinel of their own proves its events are flowing).
    ok(other.api.put("/users/me/preferences", json=[pref(other, "display_settings", "name_format", "x")]))
    theirs.wait_event(lambda e: e["event"] == "preferences_changed" and e["broadcast"]["user_id"] == other.id)
    assert not [e for e in theirs.drain_events() if user.id in json.dumps(e)]
