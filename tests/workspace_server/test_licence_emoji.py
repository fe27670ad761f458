"""The client licence (``/api/v4/license/client``), server limits (``/api/v4/limits/server``) and custom emoji
(``/api/v4/emoji``) routes that Mattermost clients call while starting, against the real server."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.workspace_server.wsclient import User, login, ok


@pytest.fixture(scope="module")
def admin_user(server: Any, admin: Any) -> User:
    return login(server.base_url, admin.username, admin.password)


def error_id(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"id", "message", "detailed_error", "request_id", "status_code"}
    return str(body["id"])


def test_client_licence_is_unlicensed_and_needs_no_session(server: Any, admin_user: User) -> None:
    anonymous = httpx.get(f"{server.base_url}/api/v4/license/client", params={"format": "old"})
    assert anonymous.status_code == 200 and anonymous.headers["content-type"] == "application/json"
    assert anonymous.json() == {"IsLicensed": "false"}
    assert ok(admin_user.api.get("/license/client", params={"format": "old"})) == {"IsLicensed": "false"}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", "api.license.client.old_format.app_error"),
        ("?format=", "api.license.client.old_format.app_error"),
        ("?format=new", "api.context.invalid_url_param.app_error"),
        ("?format=OLD", "api.context.invalid_url_param.app_error"),
    ],
)
def test_client_licence_formats_other_than_old_are_400(server: Any, query: str, expected: str) -> None:
    assert error_id(httpx.get(f"{server.base_url}/api/v4/license/client{query}"), 400) == expected


def test_custom_emoji_list_is_empty_and_paged(server: Any, admin_user: User) -> None:
    assert ok(admin_user.api.get("/emoji")) == []
    assert ok(admin_user.api.get("/emoji", params={"page": 2, "per_page": 50, "sort": "name"})) == []
    assert error_id(admin_user.api.get("/emoji", params={"page": -1}), 400) == "api.context.invalid_url_param.app_error"
    assert (
        error_id(admin_user.api.get("/emoji", params={"sort": "size"}), 400)
        == "api.context.invalid_url_param.app_error"
    )
    assert error_id(httpx.get(f"{server.base_url}/api/v4/emoji"), 401) == "api.context.session_expired.app_error"


def test_custom_emoji_by_name_is_404_and_by_names_empty(admin_user: User) -> None:
    assert error_id(admin_user.api.get("/emoji/name/party_parrot"), 404) == "app.emoji.get_by_name.no_result"
    assert error_id(admin_user.api.get("/emoji/name/not%20valid"), 400) == "api.context.invalid_url_param.app_error"
    assert ok(admin_user.api.post("/emoji/names", json=["party_parrot", "thumbsup"])) == []
    assert error_id(admin_user.api.post("/emoji/names", json=[]), 400) == "api.context.invalid_body_param.app_error"
    too_many = admin_user.api.post("/emoji/names", json=[f"e{i}" for i in range(201)])
    assert error_id(too_many, 400) == "api.emoji.get_multiple_by_name.too_many_names.app_error"


def test_server_limits_are_none_and_the_user_count_is_for_admins(server: Any, admin_user: User) -> None:
    limits = ok(admin_user.api.get("/limits/server"))
    assert limits["maxUsersLimit"] == 0 and limits["maxUsersHardLimit"] == 0 and limits["postHistoryLimit"] == 0
    assert limits["activeUserCount"] >= 1
    body = {"email": "limits@acme.test", "username": "limits", "password": "password-123"}
    ok(admin_user.api.post("/users", json=body), 201)
    assert ok(admin_user.api.get("/limits/server"))["activeUserCount"] == limits["activeUserCount"] + 1
    member = login(server.base_url, "limits", "password-123")
    assert ok(member.api.get("/limits/server"))["activeUserCount"] == 0
    assert (
        error_id(httpx.get(f"{server.base_url}/api/v4/limits/server"), 401) == "api.context.session_expired.app_error"
    )
