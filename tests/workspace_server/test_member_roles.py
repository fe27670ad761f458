"""Team and channel member roles: ``PUT .../members/{user_id}/roles`` and ``.../schemeRoles`` promote and demote
admins (who then may, or may no longer, do admin-only things at once), refuse what Mattermost refuses, and tell
the member over the WebSocket (``memberrole_updated``, ``channel_member_updated``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.workspace_server.content_helpers import driver
from tests.workspace_server.wsclient import User, WsClient, create_user, login, ok

PASSWORD = "password-123"
ADMIN_SCHEME = {"scheme_admin": True, "scheme_user": True, "scheme_guest": False}
USER_SCHEME = {"scheme_admin": False, "scheme_user": True, "scheme_guest": False}
FORBIDDEN = "api.context.permissions.app_error"
BAD_BODY = "api.context.invalid_body_param.app_error"
BAD_URL = "api.context.invalid_url_param.app_error"


@pytest.fixture(scope="module")
def admin_user(server: Any, admin: Any) -> User:
    return login(server.base_url, admin.username, admin.password)


@pytest.fixture(scope="module")
def acme_id(admin_user: User, server: Any) -> str:
    return str(ok(admin_user.api.get(f"/teams/name/{server.team_name}"))["id"])


@pytest.fixture(scope="module")
def users(server: Any, admin_user: User, acme_id: str) -> dict[str, User]:
    names = ("ann", "ben", "cat", "dan", "eve")
    return {name: create_user(admin_user, server.base_url, name, acme_id, PASSWORD) for name in names}


@pytest.fixture(scope="module")
def team_id(users: dict[str, User]) -> str:
    """An invite-only team ann created (so she is its admin), with ben, cat and dan in it; eve is not."""
    ann = users["ann"]
    team = ok(ann.api.post("/teams", json={"name": "guild", "display_name": "Guild", "type": "I"}), 201)
    for name in ("ben", "cat", "dan"):
        ok(ann.api.post(f"/teams/{team['id']}/members", json={"team_id": team["id"], "user_id": users[name].id}), 201)
    return str(team["id"])


@pytest.fixture
def sockets() -> Iterator[dict[str, WsClient]]:
    opened: dict[str, WsClient] = {}
    yield opened
    for ws in opened.values():
        ws.close()


def error(response: httpx.Response, status: int) -> str:
    """The Mattermost error id of a refused request (after checking the body's shape)."""
    assert response.status_code == status, f"{response.request.method} {response.request.url}: {response.text}"
    body = response.json()
    assert body["status_code"] == status and body["message"] and "request_id" in body
    return str(body["id"])


def roles_of(user: User, path: str) -> str:
    return str(ok(user.api.get(path))["roles"])


def test_team_admins_are_made_and_unmade(
    server: Any, admin_user: User, users: dict[str, User], team_id: str, sockets: dict[str, WsClient]
) -> None:
    ann, ben, cat, dan = (users[n] for n in ("ann", "ben", "cat", "dan"))
    members = f"/teams/{team_id}/members"
    assert roles_of(ann, f"{members}/{ann.id}") == "team_user team_admin"
    assert roles_of(ann, f"{members}/{ben.id}") == "team_user"
    # Ben is a plain member: he changes nobody's roles and removes nobody.
    assert error(ben.api.put(f"{members}/{cat.id}/roles", json={"roles": "team_user team_admin"}), 403) == FORBIDDEN
    assert error(ben.api.delete(f"{members}/{dan.id}"), 403) == FORBIDDEN

    # Ann promotes him through Mattermost's own Python driver; he hears of it at once.
    sockets["ben"] = WsClient(server.base_url, ben.token)
    ann_driver = driver(server, "ann", PASSWORD)
    answer = ann_driver.teams.update_team_member_roles(team_id, ben.id, {"roles": "team_user team_admin"})
    assert answer == {"status": "OK"}
    event = sockets["ben"].wait_event(lambda e: e["event"] == "memberrole_updated")
    assert event["broadcast"]["user_id"] == ben.id
    member = json.loads(event["data"]["member"])
    assert (member["team_id"], member["user_id"], member["roles"]) == (team_id, ben.id, "team_user team_admin")
    assert (member["scheme_admin"], member["scheme_user"], member["scheme_guest"]) == (True, True, False)
    assert roles_of(cat, f"{members}/{ben.id}") == "team_user team_admin"
    # His new powers hold right away: he makes cat an admin and unmakes her, and removes dan (who comes back).
    assert ok(ben.api.put(f"{members}/{cat.id}/schemeRoles", json=ADMIN_SCHEME)) == {"status": "OK"}
    assert roles_of(cat, f"{members}/{cat.id}") == "team_user team_admin"
    ok(ben.api.put(f"{members}/{cat.id}/roles", json={"roles": "team_user"}))
    assert ok(cat.api.get(f"{members}/{cat.id}"))["scheme_admin"] is False
    ok(ben.api.delete(f"{members}/{dan.id}"))
    ok(ben.api.post(members, json={"team_id": team_id, "user_id": dan.id}), 201)

    # Demoted (by the driver's scheme roles call), he loses them just as fast.
    ann_driver.teams.update_scheme_derived_roles_of_team_member(team_id, ben.id, USER_SCHEME)
    demoted = json.loads(sockets["ben"].wait_event(lambda e: e["event"] == "memberrole_updated")["data"]["member"])
    assert demoted["roles"] == "team_user" and demoted["scheme_admin"] is False
    assert roles_of(ann, f"{members}/{ben.id}") == "team_user"
    assert error(ben.api.delete(f"{members}/{dan.id}"), 403) == FORBIDDEN
    assert error(ben.api.put(f"{members}/{cat.id}/schemeRoles", json=ADMIN_SCHEME), 403) == FORBIDDEN

    # Nothing keeps the last admin from stepping down (nor does Mattermost); a system admin can still step in,
    # though only for members.
    ok(ann.api.put(f"{members}/me/roles", json={"roles": "team_user"}))
    assert error(ann.api.put(f"{members}/me/roles", json={"roles": "team_user team_admin"}), 403) == FORBIDDEN
    missing = admin_user.api.put(f"{members}/me/roles", json={"roles": "team_user team_admin"})
    assert error(missing, 404) == "app.team.get_member.missing.app_error"
    ok(admin_user.api.put(f"{members}/{ann.id}/roles", json={"roles": "team_user team_admin"}))
    assert roles_of(ann, f"{members}/{ann.id}") == "team_user team_admin"


def test_team_role_changes_refused(admin_user: User, users: dict[str, User], team_id: str, acme_id: str) -> None:
    ann, ben, eve = users["ann"], users["ben"], users["eve"]
    path = f"/teams/{team_id}/members/{ben.id}"
    for roles in ("team_user wizard", "team_user team_guest", "system_admin", "team_user system_admin", "team_admin"):
        assert error(ann.api.put(f"{path}/roles", json={"roles": roles}), 400) == BAD_BODY, roles
    assert error(ann.api.put(f"{path}/roles", json={}), 400) == BAD_BODY
    for scheme in ({**ADMIN_SCHEME, "scheme_guest": True}, {"scheme_admin": True}, {**USER_SCHEME, "scheme_user": 3}):
        assert error(ann.api.put(f"{path}/schemeRoles", json=scheme), 400) == BAD_BODY, scheme
    assert error(ann.api.put(f"/teams/nope/members/{ben.id}/roles", json={"roles": "team_user"}), 400) == BAD_URL
    assert error(ann.api.put(f"/teams/{team_id}/members/nope/roles", json={"roles": "team_user"}), 400) == BAD_URL
    unknown = f"/teams/{'a' * 26}/members/{ben.id}/roles"
    assert error(ann.api.put(unknown, json={"roles": "team_user"}), 404) == "app.team.get.find.app_error"
    # Eve is not in the invite-only team: she may not touch it, and nobody can give her a role in it.
    assert error(eve.api.put(f"{path}/roles", json={"roles": "team_user"}), 403) == FORBIDDEN
    not_member = ann.api.put(f"/teams/{team_id}/members/{eve.id}/roles", json={"roles": "team_user team_admin"})
    assert error(not_member, 404) == "app.team.get_member.missing.app_error"
    # Ann is no admin of acme, however much she manages her own team.
    acme_member = f"/teams/{acme_id}/members/{ben.id}/roles"
    assert error(ann.api.put(acme_member, json={"roles": "team_user team_admin"}), 403) == FORBIDDEN
    # Bots are members like any other.
    bot = ok(admin_user.api.post("/bots", json={"username": "rolebot"}), 201)
    ok(admin_user.api.post(f"/teams/{team_id}/members", json={"team_id": team_id, "user_id": bot["user_id"]}), 201)
    ok(ann.api.put(f"/teams/{team_id}/members/{bot['user_id']}/schemeRoles", json=ADMIN_SCHEME))
    assert roles_of(ann, f"/teams/{team_id}/members/{bot['user_id']}") == "team_user team_admin"


def test_channel_admins_are_made_and_unmade(
    server: Any, users: dict[str, User], acme_id: str, sockets: dict[str, WsClient]
) -> None:
    ann, ben, cat = users["ann"], users["ben"], users["cat"]
    channel = ok(
        ann.api.post("/channels", json={"team_id": acme_id, "name": "ops", "display_name": "Ops", "type": "P"}), 201
    )
    cid = channel["id"]
    for user in (ben, cat):
        ok(ann.api.post(f"/channels/{cid}/members", json={"user_id": user.id}), 201)
    members = f"/channels/{cid}/members"
    assert roles_of(ben, f"{members}/{ann.id}") == "channel_user channel_admin"
    first = ok(cat.api.post("/posts", json={"channel_id": cid, "message": "cat's first"}), 201)
    second = ok(cat.api.post("/posts", json={"channel_id": cid, "message": "cat's second"}), 201)
    assert error(ben.api.delete(f"/posts/{first['id']}"), 403) == FORBIDDEN
    assert error(ben.api.put(f"{members}/{cat.id}/roles", json={"roles": "channel_user channel_admin"}), 403) == (
        FORBIDDEN
    )

    sockets["ben"] = WsClient(server.base_url, ben.token)
    ann_driver = driver(server, "ann", PASSWORD)
    answer = ann_driver.channels.update_channel_roles(cid, ben.id, {"roles": "channel_user channel_admin"})
    assert answer == {"status": "OK"}
    event = sockets["ben"].wait_event(lambda e: e["event"] == "channel_member_updated")
    assert event["broadcast"]["user_id"] == ben.id
    member = json.loads(event["data"]["channelMember"])
    assert (member["channel_id"], member["user_id"], member["roles"]) == (cid, ben.id, "channel_user channel_admin")
    assert member["scheme_admin"] is True and member["notify_props"]["mark_unread"] == "all"
    assert roles_of(cat, f"{members}/{ben.id}") == "channel_user channel_admin"
    # A channel admin deletes others' posts and manages the channel's roles.
    ok(ben.api.delete(f"/posts/{first['id']}"))
    ok(ben.api.put(f"{members}/{cat.id}/schemeRoles", json=ADMIN_SCHEME))
    assert roles_of(cat, f"{members}/{cat.id}") == "channel_user channel_admin"
    ok(ben.api.put(f"{members}/{cat.id}/schemeRoles", json=USER_SCHEME))

    ann_driver.channels.update_scheme_derived_roles_of_channel_member(cid, ben.id, USER_SCHEME)
    demoted = sockets["ben"].wait_event(lambda e: e["event"] == "channel_member_updated")
    assert json.loads(demoted["data"]["channelMember"])["roles"] == "channel_user"
    assert error(ben.api.delete(f"/posts/{second['id']}"), 403) == FORBIDDEN
    assert error(ben.api.put(f"{members}/{cat.id}/roles", json={"roles": "channel_user"}), 403) == FORBIDDEN


def test_channel_role_changes_refused(
    server: Any, admin_user: User, users: dict[str, User], team_id: str, sockets: dict[str, WsClient]
) -> None:
    ann, ben, cat, dan, eve = (users[n] for n in ("ann", "ben", "cat", "dan", "eve"))
    # Cat's private channel in ann's team: ann is no member, but as the team's admin she manages its roles.
    body = {"team_id": team_id, "name": "den", "display_name": "Den", "type": "P"}
    den = ok(cat.api.post("/channels", json=body), 201)
    ok(cat.api.post(f"/channels/{den['id']}/members", json={"user_id": dan.id}), 201)
    members = f"/channels/{den['id']}/members"
    ok(ann.api.put(f"{members}/{dan.id}/roles", json={"roles": "channel_user channel_admin"}))
    assert roles_of(cat, f"{members}/{dan.id}") == "channel_user channel_admin"
    # Ben, in the team but not the channel, cannot see it; nobody gives a role to a non-member.
    assert error(ben.api.put(f"{members}/{cat.id}/roles", json={"roles": "channel_user"}), 403) == FORBIDDEN
    not_member = ann.api.put(f"{members}/{ben.id}/roles", json={"roles": "channel_user channel_admin"})
    assert error(not_member, 404) == "app.channel.get_member.missing.app_error"
    for roles in ("channel_user team_admin", "channel_admin", "channel_user channel_guest", "channel_user wizard"):
        assert error(cat.api.put(f"{members}/{dan.id}/roles", json={"roles": roles}), 400) == BAD_BODY, roles
    assert error(cat.api.put(f"{members}/{dan.id}/schemeRoles", json={"scheme_admin": True}), 400) == BAD_BODY
    assert error(cat.api.put(f"/channels/nope/members/{dan.id}/roles", json={"roles": "channel_user"}), 400) == BAD_URL
    unknown = f"/channels/{'b' * 26}/members/{dan.id}/roles"
    assert error(cat.api.put(unknown, json={"roles": "channel_user"}), 404) == "app.channel.get.existing.app_error"

    # Direct and group channels have no roles to change, even for a system admin; outsiders only hear "no".
    direct = ok(ann.api.post("/channels/direct", json=[ann.id, ben.id]), 201)
    group = ok(ann.api.post("/channels/group", json=[ben.id, cat.id]), 201)
    for channel in (direct, group):
        path = f"/channels/{channel['id']}/members/{ben.id}"
        for caller in (ann, admin_user):
            refused = caller.api.put(f"{path}/roles", json={"roles": "channel_user channel_admin"})
            assert error(refused, 400) == "api.channel.update_channel_member_roles.channel_type.app_error"
        assert error(eve.api.put(f"{path}/schemeRoles", json=ADMIN_SCHEME), 403) == FORBIDDEN
    # The WebSocket event goes to the member alone.
    sockets["dan"] = WsClient(server.base_url, dan.token)
    sockets["cat"] = WsClient(server.base_url, cat.token)
    ok(cat.api.put(f"{members}/{dan.id}/roles", json={"roles": "channel_user"}))
    sockets["dan"].wait_event(lambda e: e["event"] == "channel_member_updated")
    ok(cat.api.post("/posts", json={"channel_id": den["id"], "message": "marker"}), 201)
    sockets["cat"].wait_event(lambda e: e["event"] == "posted")
    assert not [e for e in sockets["cat"].events if e["event"] == "channel_member_updated"]
