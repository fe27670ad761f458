"""Accounts: profile patches, passwords, roles, deactivation, personal access tokens, bots, and what the usage
endpoint counts."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from mattermostdriver import Driver
from mattermostdriver.endpoints.bots import Bots
from mattermostdriver.exceptions import InvalidOrMissingParameters, NoAccessTokenProvided, NotEnoughPermissions

from tests.workspace_server.content_helpers import driver, make_user


@pytest.fixture(scope="module")
def admin_client(server: Any, admin: Any) -> Driver:
    return driver(server, admin.username, admin.password)


@pytest.fixture(scope="module")
def team(server: Any, admin_client: Driver) -> dict[str, Any]:
    return admin_client.teams.get_team_by_name(server.team_name)


def bots(client: Driver) -> Bots:
    """The driver's bots endpoints (Driver has no ``bots`` property; ``Driver.api`` is deprecated)."""
    return Bots(client.client)


def usage(server: Any) -> dict[str, Any]:
    response = httpx.get(
        f"{server.base_url}/api/v4/canopy/usage", headers={"Authorization": f"Bearer {server.control_token}"}
    )
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def me_status(server: Any, token: str) -> int:
    return httpx.get(f"{server.base_url}/api/v4/users/me", headers={"Authorization": f"Bearer {token}"}).status_code


def test_profile_patch_and_password_change(server: Any, admin_client: Driver, team: dict[str, Any]) -> None:
    user, password = make_user(admin_client, team["id"], "paula")
    paula = driver(server, "paula", password)
    other_device = driver(server, "paula", password)
    patched = paula.users.patch_user("me", {"nickname": "Pau", "position": "Pilot"})
    assert (patched["nickname"], patched["position"], patched["username"]) == ("Pau", "Pilot", "paula")
    assert admin_client.users.get_user(user["id"])["nickname"] == "Pau"
    _, quinn_password = make_user(admin_client, team["id"], "quinn")
    quinn = driver(server, "quinn", quinn_password)
    with pytest.raises(NotEnoughPermissions):
        quinn.users.patch_user(user["id"], {"nickname": "hacked"})
    # Changing one's email needs the password; names must stay unique.
    with pytest.raises(InvalidOrMissingParameters):
        paula.users.patch_user("me", {"email": "paula@elsewhere.test"})
    moved = paula.users.patch_user("me", {"email": "paula@elsewhere.test", "password": password})
    assert moved["email"] == "paula@elsewhere.test"
    with pytest.raises(InvalidOrMissingParameters, match="username already exists"):
        paula.users.patch_user("me", {"username": "quinn"})
    full = paula.users.update_user("me", {"id": user["id"], "first_name": "Paula"})
    assert full["first_name"] == "Paula" and full["nickname"] == "Pau"

    with pytest.raises(InvalidOrMissingParameters, match="current password is incorrect"):
        paula.users.update_user_password("me", {"current_password": "wrong-one", "new_password": "new-secret-1"})
    assert paula.users.update_user_password("me", {"current_password": password, "new_password": "new-secret-1"}) == {
        "status": "OK"
    }
    # This session goes on, the other device's does not; the new password logs in, the old one no longer.
    assert me_status(server, paula.client.token) == 200
    assert me_status(server, other_device.client.token) == 401
    login = httpx.post(f"{server.base_url}/api/v4/users/login", json={"login_id": "paula", "password": password})
    assert login.status_code == 401
    assert driver(server, "paula", "new-secret-1").client.userid == user["id"]
    # Admins set anyone's password without knowing it; others may not.
    with pytest.raises(NotEnoughPermissions):
        quinn.users.update_user_password(user["id"], {"new_password": "quinn-was-here"})
    admin_client.users.update_user_password(user["id"], {"new_password": "reset-by-admin"})
    assert driver(server, "paula", "reset-by-admin").client.userid == user["id"]


def test_roles(server: Any, admin_client: Driver, team: dict[str, Any]) -> None:
    user, password = make_user(admin_client, team["id"], "rita")
    rita = driver(server, "rita", password)
    with pytest.raises(NotEnoughPermissions):
        rita.users.update_user_role(user["id"], {"roles": "system_user system_admin"})
    with pytest.raises(InvalidOrMissingParameters):
        admin_client.users.update_user_role(user["id"], {"roles": "system_admin"})  # system_user is required
    with pytest.raises(InvalidOrMissingParameters):
        admin_client.users.update_user_role(user["id"], {"roles": "system_user wizard"})
    admin_client.users.update_user_role(user["id"], {"roles": "system_user system_admin"})
    # The existing session carries the new role at once.
    assert rita.users.get_user("me")["roles"] == "system_user system_admin"
    assert len(rita.users.get_users_by_ids([user["id"]])) == 1
    admin_client.users.update_user_role(user["id"], {"roles": "system_user"})
    with pytest.raises(NotEnoughPermissions):
        rita.users.update_user_role(user["id"], {"roles": "system_user system_admin"})


def test_deactivation_and_reactivation(server: Any, admin_client: Driver, team: dict[str, Any]) -> None:
    before = usage(server)["activated_users"]
    user, password = make_user(admin_client, team["id"], "victor")
    assert usage(server)["activated_users"] == before + 1
    victor = driver(server, "victor", password)
    with pytest.raises(NotEnoughPermissions):
        victor.users.update_user_active_status(user["id"], {"active": False})
    admin_client.users.update_user_active_status(user["id"], {"active": False})
    assert usage(server)["activated_users"] == before
    assert me_status(server, victor.client.token) == 401
    login = httpx.post(f"{server.base_url}/api/v4/users/login", json={"login_id": "victor", "password": password})
    assert login.status_code == 401 and login.json()["id"] == "api.user.login.inactive.app_error"
    admin_client.users.update_user_active_status(user["id"], {"active": True})
    assert usage(server)["activated_users"] == before + 1
    assert driver(server, "victor", password).users.get_user("me")["delete_at"] == 0


def test_personal_access_tokens(server: Any, admin_client: Driver, team: dict[str, Any]) -> None:
    user, password = make_user(admin_client, team["id"], "tess")
    tess = driver(server, "tess", password)
    # Tokens are for those who hold the role (or admins).
    with pytest.raises(NotEnoughPermissions):
        tess.users.create_user_access_token("me", {"description": "ci"})
    admin_client.users.update_user_role(user["id"], {"roles": "system_user system_user_access_token"})
    created = tess.users.create_user_access_token("me", {"description": "ci"})
    assert created["user_id"] == user["id"] and created["description"] == "ci" and created["is_active"] is True
    token = created["token"]
    listed = httpx.get(
        f"{server.base_url}/api/v4/users/me/tokens", headers={"Authorization": f"Bearer {tess.client.token}"}
    ).json()
    assert [t["id"] for t in listed] == [created["id"]] and "token" not in listed[0]

    with_token = driver(server, token=token)
    assert with_token.users.get_user("me")["id"] == user["id"]
    town_square = with_token.channels.get_channel_by_name(team["id"], "town-square")
    post = with_token.posts.create_post({"channel_id": town_square["id"], "message": "from a token"})
    assert post["user_id"] == user["id"]

    # The token survives a password change and a logout of the password sessions, not its revocation.
    tess.users.update_user_password("me", {"current_password": password, "new_password": "tess-new-pass"})
    assert me_status(server, token) == 200
    revoke = httpx.post(
        f"{server.base_url}/api/v4/users/tokens/disable",
        json={"token_id": created["id"]},
        headers={"Authorization": f"Bearer {tess.client.token}"},
    )
    assert revoke.status_code == 200 and me_status(server, token) == 401
    enable = httpx.post(
        f"{server.base_url}/api/v4/users/tokens/enable",
        json={"token_id": created["id"]},
        headers={"Authorization": f"Bearer {tess.client.token}"},
    )
    assert enable.status_code == 200 and me_status(server, token) == 200
    # Deactivation stops it; reactivation brings it back.
    admin_client.users.update_user_active_status(user["id"], {"active": False})
    assert me_status(server, token) == 401
    admin_client.users.update_user_active_status(user["id"], {"active": True})
    assert me_status(server, token) == 200
    assert me_status(server, tess.client.token) == 401  # her password session ended with the deactivation
    tess = driver(server, "tess", "tess-new-pass")
    # Someone else cannot revoke it; its owner can, for good.
    _, other_password = make_user(admin_client, team["id"], "ugo")
    ugo = driver(server, "ugo", other_password)
    headers = {"Authorization": f"Bearer {ugo.client.token}"}
    stranger = httpx.post(
        f"{server.base_url}/api/v4/users/tokens/revoke", json={"token_id": created["id"]}, headers=headers
    )
    assert stranger.status_code == 403 and me_status(server, token) == 200
    revoked = httpx.post(
        f"{server.base_url}/api/v4/users/tokens/revoke",
        json={"token_id": created["id"]},
        headers={"Authorization": f"Bearer {tess.client.token}"},
    )
    assert revoked.status_code == 200 and me_status(server, token) == 401


def test_bots_post_with_tokens_and_never_count(server: Any, admin_client: Driver, team: dict[str, Any]) -> None:
    before = usage(server)["activated_users"]
    bot = bots(admin_client).create_bot({"username": "deploybot", "display_name": "Deploy Bot", "description": "CI"})
    assert bot["username"] == "deploybot" and bot["display_name"] == "Deploy Bot"
    assert bot["owner_id"] == admin_client.client.userid and bot["delete_at"] == 0
    user = admin_client.users.get_user(bot["user_id"])
    assert user["is_bot"] is True and user["username"] == "deploybot"
    assert [b["user_id"] for b in bots(admin_client).get_bots()] == [bot["user_id"]]
    assert usage(server)["activated_users"] == before
    # No password: the bot cannot log in; it works with a token an admin makes for it.
    login = httpx.post(f"{server.base_url}/api/v4/users/login", json={"login_id": "deploybot", "password": ""})
    assert login.status_code in (400, 401)
    token = admin_client.users.create_user_access_token(bot["user_id"], {"description": "deploys"})["token"]
    admin_client.teams.add_user_to_team(team["id"], {"team_id": team["id"], "user_id": bot["user_id"]})
    bot_client = driver(server, token=token)
    town_square = bot_client.channels.get_channel_by_name(team["id"], "town-square")
    post = bot_client.posts.create_post({"channel_id": town_square["id"], "message": "deployed v1.2.3"})
    assert post["user_id"] == bot["user_id"] and post["props"]["from_bot"] == "true"
    assert usage(server)["activated_users"] == before
    # Non-admins neither create nor see others' bots.
    _, password = make_user(admin_client, team["id"], "wendy")
    before += 1
    wendy = driver(server, "wendy", password)
    with pytest.raises(NotEnoughPermissions):
        bots(wendy).create_bot({"username": "sneakybot"})
    assert bots(wendy).get_bots() == []
    # Disabling the bot stops its token.
    disabled = bots(admin_client).disable_bot(bot["user_id"])
    assert disabled["delete_at"] > 0
    with pytest.raises(NoAccessTokenProvided):
        bot_client.users.get_user("me")
    bots(admin_client).enable_bot(bot["user_id"])
    assert bot_client.users.get_user("me")["id"] == bot["user_id"]
    assert usage(server)["activated_users"] == before


def test_user_listing_filters(server: Any, admin_client: Driver, team: dict[str, Any]) -> None:
    user, password = make_user(admin_client, team["id"], "yara")
    yara = driver(server, "yara", password)
    everyone = {u["id"] for u in yara.users.get_users(params={"per_page": 200})}
    assert user["id"] in everyone and admin_client.client.userid in everyone
    in_team = {u["id"] for u in yara.users.get_users(params={"in_team": team["id"], "per_page": 200})}
    assert user["id"] in in_team
    channel = admin_client.channels.create_channel(
        {"team_id": team["id"], "name": "admins-only", "display_name": "Admins", "type": "P"}
    )
    with pytest.raises(NotEnoughPermissions):
        yara.users.get_users(params={"in_channel": channel["id"]})
    in_channel = admin_client.users.get_users(params={"in_channel": channel["id"]})
    assert [u["id"] for u in in_channel] == [admin_client.client.userid]
    first = yara.users.get_users(params={"page": 0, "per_page": 1})
    second = yara.users.get_users(params={"page": 1, "per_page": 1})
    assert len(first) == len(second) == 1 and first[0]["id"] != second[0]["id"]
    inactive = admin_client.users.get_users(params={"inactive": True, "per_page": 200})
    assert all(u["delete_at"] > 0 for u in inactive) and user["id"] not in {u["id"] for u in inactive}
