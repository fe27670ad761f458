"""Wire-level details that Mattermost clients depend on, and the internal Canopy endpoints."""

from __future__ import annotations

import time
from typing import Any

import httpx
import psycopg
import pytest

ERROR_KEYS = {"id", "message", "detailed_error", "request_id", "status_code"}


@pytest.fixture(scope="module")
def api(server: Any) -> httpx.Client:
    with httpx.Client(base_url=f"{server.base_url}/api/v4", timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def admin_headers(api: httpx.Client, admin: Any) -> dict[str, str]:
    response = api.post("/users/login", json={"login_id": admin.email, "password": admin.password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.headers['Token']}"}


def control(server: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.control_token}"}


def assert_app_error(response: httpx.Response, status: int, error_id: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert set(body) == ERROR_KEYS
    assert body["id"] == error_id and body["status_code"] == status and body["detailed_error"] == ""
    assert body["request_id"] == response.headers["x-request-id"] and len(body["request_id"]) == 26
    return body


def test_ping_is_public_and_reports_the_database(api: httpx.Client) -> None:
    response = api.get("/system/ping")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["status"] == "OK" and body["database_status"] == "OK"
    assert body["ActiveSearchBackend"] == "database"


def test_content_type_is_exactly_application_json(api: httpx.Client, admin_headers: dict[str, str]) -> None:
    for response in (
        api.get("/users/me", headers=admin_headers),
        api.get("/users/me"),
        api.get("/no/such/route"),
        api.post("/users/login", content=b"not json"),
    ):
        assert response.headers["content-type"] == "application/json", response.request.url


def test_unknown_route_is_a_mattermost_404(api: httpx.Client) -> None:
    assert_app_error(api.get("/no/such/route"), 404, "api.context.404.app_error")


def test_double_slashes_collapse(server: Any, admin: Any, admin_headers: dict[str, str]) -> None:
    response = httpx.get(f"{server.base_url}/api/v4//users//me", headers=admin_headers)
    assert response.request.url.raw_path == b"/api/v4//users//me"
    assert response.status_code == 200, response.text
    assert response.json()["id"] == admin.user["id"]
    assert httpx.get(f"{server.base_url}//api/v4/system///ping").json()["status"] == "OK"


def test_bad_login_is_a_401_app_error(api: httpx.Client, admin: Any) -> None:
    wrong_password = api.post("/users/login", json={"login_id": admin.username, "password": "nope-nope"})
    body = assert_app_error(wrong_password, 401, "api.user.login.invalid_credentials_email_username")
    assert body["message"]
    assert "token" not in {k.lower() for k in wrong_password.headers}
    unknown_user = api.post("/users/login", json={"login_id": "nobody", "password": "whatever1"})
    assert_app_error(unknown_user, 401, "api.user.login.invalid_credentials_email_username")


def test_login_sets_the_token_header_and_cookies(api: httpx.Client, admin: Any) -> None:
    response = api.post("/users/login", json={"login_id": admin.email.upper(), "password": admin.password})
    assert response.status_code == 200
    token = response.headers["Token"]
    assert response.cookies["MMAUTHTOKEN"] == token
    assert response.cookies["MMUSERID"] == admin.user["id"]
    user = response.json()
    assert user["id"] == admin.user["id"] and "password" not in user
    for scheme in ("Bearer", "Token"):
        me = api.get("/users/me", headers={"Authorization": f"{scheme} {token}"})
        assert me.json()["id"] == admin.user["id"]


def test_cookie_sessions_need_a_csrf_proof_to_write(server: Any, admin: Any) -> None:
    with httpx.Client(base_url=f"{server.base_url}/api/v4") as browser:
        login = browser.post("/users/login", json={"login_id": admin.username, "password": admin.password})
        assert login.status_code == 200
        assert browser.get("/users/me").json()["id"] == admin.user["id"]
        body = {"email": "carol@acme.test", "username": "carol", "password": "carol-password"}
        assert browser.post("/users", json=body).status_code == 403  # treated as anonymous: signup closed
        csrf = {"X-CSRF-Token": login.cookies["MMCSRF"]}
        assert browser.post("/users", json=body, headers=csrf).status_code == 201


def test_logout_ends_the_session(api: httpx.Client, admin: Any) -> None:
    token = api.post("/users/login", json={"login_id": admin.username, "password": admin.password}).headers["Token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert api.get("/users/me", headers=headers).status_code == 200
    assert api.post("/users/logout", headers=headers).json() == {"status": "OK"}
    assert_app_error(api.get("/users/me", headers=headers), 401, "api.context.session_expired.app_error")


def test_bodies_are_json_whatever_the_declared_type(api: httpx.Client, admin: Any) -> None:
    content = f'{{"login_id": "{admin.username}", "password": "{admin.password}"}}'.encode()
    response = api.post("/users/login", content=content, headers={"Content-Type": "text/plain"})
    assert response.status_code == 200, response.text


def test_users_lookups(api: httpx.Client, admin: Any, admin_headers: dict[str, str]) -> None:
    by_name = api.get(f"/users/username/{admin.username}", headers=admin_headers).json()
    by_email = api.get(f"/users/email/{admin.email}", headers=admin_headers).json()
    by_id = api.get(f"/users/{admin.user['id']}", headers=admin_headers).json()
    assert by_name["id"] == by_email["id"] == by_id["id"] == admin.user["id"]
    listed = api.post("/users/ids", json=[admin.user["id"]], headers=admin_headers).json()
    assert [u["id"] for u in listed] == [admin.user["id"]]
    missing = api.get("/users/username/nobody-here", headers=admin_headers)
    assert_app_error(missing, 404, "app.user.missing_account.const")
    assert_app_error(api.get("/users/not-an-id", headers=admin_headers), 400, "api.context.invalid_url_param.app_error")


def test_initial_admin_is_idempotent(api: httpx.Client, server: Any, admin: Any) -> None:
    again = api.put(
        "/canopy/initial_admin",
        headers=control(server),
        json={"email": admin.email, "username": admin.username, "password_hash": "$argon2id$v=19$m=8,t=1,p=1$x$y"},
    )
    assert again.status_code == 200
    assert again.json()["id"] == admin.user["id"]
    # The original password still works: the existing account was left alone.
    assert api.post("/users/login", json={"login_id": admin.username, "password": admin.password}).status_code == 200


@pytest.mark.parametrize(
    "authorization",
    ["Bearer", "Bearer wrong-token", "Bearer test-control-token-0123456789abcdeX", "Token {token}", "{token}"],
)
def test_internal_endpoints_reject_a_wrong_token(api: httpx.Client, server: Any, authorization: str) -> None:
    headers = {"Authorization": authorization.format(token=server.control_token)}
    assert_app_error(api.get("/canopy/usage", headers=headers), 401, "api.canopy.control_token.app_error")
    body = {"email": "x@acme.test", "username": "xavier", "password_hash": "$argon2id$v=19$m=8,t=1,p=1$x$y"}
    put = api.put("/canopy/initial_admin", headers=headers, json=body)
    assert_app_error(put, 401, "api.canopy.control_token.app_error")
    assert_app_error(api.get("/canopy/usage"), 401, "api.canopy.control_token.app_error")
    assert api.get("/users/email/x@acme.test", headers=control(server)).status_code == 401


def test_internal_endpoints_reject_a_user_session(api: httpx.Client, admin_headers: dict[str, str]) -> None:
    assert_app_error(api.get("/canopy/usage", headers=admin_headers), 401, "api.canopy.control_token.app_error")


def test_usage_counts_activated_users_posts_and_files(
    api: httpx.Client, server: Any, admin_headers: dict[str, str]
) -> None:
    before = api.get("/canopy/usage", headers=control(server)).json()
    assert set(before) == {"activated_users", "posts", "storage_bytes"}

    created = []
    for name in ("dave", "erin"):
        body = {"email": f"{name}@acme.test", "username": name, "password": f"{name}-password"}
        response = api.post("/users", json=body, headers=admin_headers)
        assert response.status_code == 201, response.text
        created.append(response.json())
    robot = api.post("/bots", json={"username": "robot"}, headers=admin_headers)
    assert robot.status_code == 201, robot.text
    channel = api.get(f"/teams/name/{server.team_name}/channels/name/town-square", headers=admin_headers).json()
    for message in ("one", "two"):
        assert (
            api.post(
                "/posts", json={"channel_id": channel["id"], "message": message}, headers=admin_headers
            ).status_code
            == 201
        )
    blob = {"channel_id": channel["id"], "filename": "blob.bin"}
    upload = api.post("/files", params=blob, content=b"x" * 1234, headers=admin_headers)
    assert upload.status_code == 201, upload.text

    after = api.get("/canopy/usage", headers=control(server)).json()
    assert after["activated_users"] == before["activated_users"] + 2  # the bot does not count
    assert after["posts"] == before["posts"] + 2
    assert after["storage_bytes"] == before["storage_bytes"] + 1234

    # Deactivating (Mattermost's DELETE /users/{id}) stops a user counting, and ends their sessions.
    dave_token = api.post("/users/login", json={"login_id": "dave", "password": "dave-password"}).headers["Token"]
    assert api.delete(f"/users/{created[0]['id']}", headers=admin_headers).json() == {"status": "OK"}
    assert api.get("/canopy/usage", headers=control(server)).json()["activated_users"] == after["activated_users"] - 1
    assert api.get("/users/me", headers={"Authorization": f"Bearer {dave_token}"}).status_code == 401
    relogin = api.post("/users/login", json={"login_id": "dave", "password": "dave-password"})
    assert_app_error(relogin, 401, "api.user.login.inactive.app_error")
    deactivated = api.get(f"/users/{created[0]['id']}", headers=admin_headers).json()
    assert deactivated["delete_at"] > 0


def test_only_admins_deactivate_users(api: httpx.Client, admin: Any, admin_headers: dict[str, str]) -> None:
    body = {"email": "fiona@acme.test", "username": "fiona", "password": "fiona-password"}
    assert api.post("/users", json=body, headers=admin_headers).status_code == 201
    token = api.post("/users/login", json={"login_id": "fiona", "password": "fiona-password"}).headers["Token"]
    response = api.delete(f"/users/{admin.user['id']}", headers={"Authorization": f"Bearer {token}"})
    assert_app_error(response, 403, "api.context.permissions.app_error")


def test_ping_reports_an_unreachable_database(
    create_database: Any, spawn_server: Any, tmp_path: Any, admin_url: str
) -> None:
    doomed = create_database("ws_ping")
    running = spawn_server(doomed, tmp_path)
    running.wait_ready()
    name = doomed.rpartition("/")[2]
    with psycopg.connect(admin_url, autocommit=True) as db:
        db.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    deadline = time.monotonic() + 10
    response = httpx.get(f"{running.base_url}/api/v4/system/ping", timeout=10)
    while response.status_code == 200 and time.monotonic() < deadline:
        response = httpx.get(f"{running.base_url}/api/v4/system/ping", timeout=10)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json()["status"] == "unhealthy"
    assert running.stop() == 0


def test_client_config_names_the_site(api: httpx.Client, server: Any) -> None:
    config = api.get("/config/client", params={"format": "old"})
    assert config.status_code == 200 and config.headers["content-type"] == "application/json"
    body = config.json()
    assert body["SiteName"] == server.env["WS_SITE_NAME"] and body["SiteURL"] == server.env["WS_PUBLIC_URL"]
    assert body["EnableOpenServer"] == "false"
    assert_app_error(api.get("/config/client"), 501, "api.config.client.old_format.app_error")


def test_open_server_lets_anyone_sign_up_and_join_the_team(
    create_database: Any, spawn_server: Any, tmp_path: Any
) -> None:
    running = spawn_server(create_database("ws_open"), tmp_path, WS_ENABLE_OPEN_SERVER="true")
    running.wait_ready()
    with httpx.Client(base_url=f"{running.base_url}/api/v4", timeout=10) as client:
        body = {"email": "Frank@Acme.test", "username": "Frank", "password": "frank-password"}
        created = client.post("/users", json=body)
        assert created.status_code == 201, created.text
        frank = created.json()
        assert frank["email"] == "frank@acme.test" and frank["username"] == "frank"
        assert frank["roles"] == "system_user" and frank["email_verified"] is False
        assert_app_error(client.post("/users", json=body), 400, "app.user.save.email_exists.app_error")
        taken = client.post("/users", json=body | {"email": "other@acme.test"})
        assert_app_error(taken, 400, "app.user.save.username_exists.app_error")
        short = client.post("/users", json={"email": "g@acme.test", "username": "gina", "password": "short"})
        assert_app_error(short, 400, "model.user.is_valid.pwd_length.app_error")

        token = client.post("/users/login", json={"login_id": "frank", "password": "frank-password"}).headers["Token"]
        headers = {"Authorization": f"Bearer {token}"}
        assert client.get("/users/me/teams", headers=headers).json() == []
        team = client.get(f"/teams/name/{running.team_name}", headers=headers).json()
        assert team["allow_open_invite"] is True and team["invite_id"] == ""  # hidden from non-admins
        joined = client.post(
            f"/teams/{team['id']}/members", json={"team_id": team["id"], "user_id": frank["id"]}, headers=headers
        )
        assert joined.status_code == 201 and joined.json()["roles"] == "team_user"
        assert [t["id"] for t in client.get("/users/me/teams", headers=headers).json()] == [team["id"]]
        channels = client.get(f"/users/me/teams/{team['id']}/channels", headers=headers).json()
        assert sorted(c["name"] for c in channels) == ["off-topic", "town-square"]
    assert running.stop() == 0
