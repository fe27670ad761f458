"""``POST /api/v4/posts`` is served by a fast path for bearer-token requests and by the route otherwise (cookie
sessions, odd bodies, attachments): both must answer alike, down to error bodies and headers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from tests.workspace_server.wsclient import create_user, login, ok

ERROR_KEYS = {"id", "message", "detailed_error", "request_id", "status_code"}
POST_KEYS = {
    "id", "create_at", "update_at", "edit_at", "delete_at", "is_pinned", "user_id", "channel_id", "root_id",
    "original_id", "message", "type", "props", "hashtags", "file_ids", "pending_post_id", "reply_count",
    "last_reply_at", "participants", "metadata",
}  # fmt: skip


@pytest.fixture(scope="module")
def setting(server: Any, admin: Any) -> Iterator[dict[str, Any]]:
    boss = login(server.base_url, admin.username, admin.password)
    team_id = ok(boss.api.get(f"/teams/name/{server.team_name}"))["id"]
    member = create_user(boss, server.base_url, "fastpath", team_id)
    outsider = create_user(boss, server.base_url, "outsider", team_id)
    body = {"team_id": team_id, "name": "fast-path", "display_name": "Fast path", "type": "P"}
    channel = ok(member.api.post("/channels", json=body), 201)["id"]
    gone = ok(member.api.post("/channels", json=body | {"name": "gone", "display_name": "Gone"}), 201)["id"]
    with psycopg.connect(server.database_url, autocommit=True) as db:  # archived (no route archives channels yet)
        db.execute("UPDATE channels SET delete_at = 1 WHERE id = %s", (gone,))
    # The same user through a cookie session: the framework's path (with the CSRF proof Mattermost asks for).
    cookies = httpx.Client(base_url=f"{server.base_url}/api/v4", timeout=15)
    ok(cookies.post("/users/login", json={"login_id": "fastpath", "password": "password-123"}))
    cookies.headers["X-Requested-With"] = "XMLHttpRequest"
    yield {"bearer": member.api, "cookie": cookies, "outsider": outsider.api, "channel": channel, "gone": gone}
    cookies.close()


def _answers(client: httpx.Client, body: Any) -> httpx.Response:
    if isinstance(body, bytes):
        return client.post("/posts", content=body)
    return client.post("/posts", json=body)


def test_both_paths_create_the_same_post(setting: dict[str, Any]) -> None:
    made = []
    for path in ("bearer", "cookie"):
        body = {"channel_id": setting["channel"], "message": "hello #fast @fastpath", "pending_post_id": "p1"}
        response = _answers(setting[path], body | {"props": {"from_webhook": "true", "x": 1}})
        assert response.status_code == 201, response.text
        assert response.headers["content-type"] == "application/json"
        assert len(response.headers["x-request-id"]) == 26 and response.headers["x-version-id"]
        post = response.json()
        assert set(post) == POST_KEYS
        made.append(post)
    for post in made:
        assert post["props"] == {"x": 1} and post["hashtags"] == "#fast" and post["pending_post_id"] == "p1"
    reply = _answers(setting["bearer"], {"channel_id": setting["channel"], "message": "re", "root_id": made[0]["id"]})
    assert reply.status_code == 201 and reply.json()["reply_count"] == 1


@pytest.mark.parametrize(
    ("body", "status", "error_id"),
    [
        ({"channel_id": "nope", "message": "x"}, 400, "api.context.invalid_body_param.app_error"),
        ({"message": "x"}, 400, "api.context.invalid_body_param.app_error"),
        ({"channel_id": 5, "message": "x"}, 400, "api.context.invalid_body_param.app_error"),
        (b"not json", 400, "api.context.invalid_body_param.app_error"),
        (b"", 400, "api.context.invalid_body_param.app_error"),
        ({"channel_id": "a" * 26, "message": "x"}, 403, "api.context.permissions.app_error"),
        ("gone", 400, "api.post.create_post.can_not_post_to_deleted.error"),
        ("bad-root", 400, "api.post.create_post.root_id.app_error"),
        ("long", 400, "model.post.is_valid.msg.app_error"),
        ("nul", 400, "api.context.invalid_body_param.app_error"),
        ("nul-props", 400, "api.context.invalid_body_param.app_error"),
        ("bad-files", 400, "model.post.is_valid.file_ids.app_error"),
    ],
)
def test_both_paths_refuse_alike(setting: dict[str, Any], body: Any, status: int, error_id: str) -> None:
    if body == "gone":
        body = {"channel_id": setting["gone"], "message": "x"}
    elif body == "bad-root":
        body = {"channel_id": setting["channel"], "message": "x", "root_id": "b" * 26}
    elif body == "long":
        body = {"channel_id": setting["channel"], "message": "x" * 20000}
    elif body == "nul":  # PostgreSQL text cannot hold it: refused before either path reads the body
        body = {"channel_id": setting["channel"], "message": "x\u0000y"}
    elif body == "nul-props":
        body = {"channel_id": setting["channel"], "message": "x", "props": {"a": ["\u0000"]}}
    elif body == "bad-files":
        body = {"channel_id": setting["channel"], "message": "x", "file_ids": ["nope"]}
    answers = [_answers(setting[path], body) for path in ("bearer", "cookie")]
    for response in answers:
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/json"
        error = response.json()
        assert set(error) == ERROR_KEYS and error["id"] == error_id
        assert error["request_id"] == response.headers["x-request-id"]
    assert answers[0].json() | {"request_id": ""} == answers[1].json() | {"request_id": ""}


def test_non_members_and_strangers_are_refused(setting: dict[str, Any], server: Any) -> None:
    body = {"channel_id": setting["channel"], "message": "let me in"}
    assert setting["outsider"].post("/posts", json=body).status_code == 403
    stranger = httpx.post(f"{server.base_url}/api/v4/posts", json=body, headers={"Authorization": "Bearer " + "z" * 26})
    assert stranger.status_code == 401 and stranger.json()["id"] == "api.context.session_expired.app_error"
    # A cookie session without the CSRF proof may not write, even with a valid body.
    cookie = setting["cookie"]
    assert cookie.post("/posts", json=body, headers={"X-Requested-With": ""}).status_code == 401
