"""The billing plan the control plane sets (``PUT``/``GET /api/v4/canopy/plan``) and what it does, against the real
server and PostgreSQL: a suspended workspace refuses every write of content (through the unmodified mattermostdriver
and raw HTTP, both paths of ``POST /posts``, webhooks, uploads, edits, reactions) while signing in and reading keep
working, in every server process from the next request on; a trial and a delinquency show in the client licence and
the cloud subscription the way Mattermost Cloud shows them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from mattermostdriver import Driver
from mattermostdriver.exceptions import NotEnoughPermissions

from tests.workspace_server.conftest import CONTROL_TOKEN, ServerProcess
from tests.workspace_server.content_helpers import driver, make_user, png_bytes
from tests.workspace_server.wsclient import User, WsClient, login, ok

ERROR_KEYS = {"id", "message", "detailed_error", "request_id", "status_code"}
TRIAL_END = 1_900_000_000_000  # 2030-03-17, in ms
DELINQUENT_SINCE = 1_780_000_123_456  # 2026-05-28, in ms
BILLING_URL = "https://canopy.example/orgs/acme/billing"
ACTIVE = {"state": "active", "trial_end_at": 0, "delinquent_since": 0, "billing_url": ""}
SUSPENDED = {"state": "suspended", "trial_end_at": 0, "delinquent_since": DELINQUENT_SINCE, "billing_url": BILLING_URL}
# Mattermost's model.Subscription, field for field.
SUBSCRIPTION_KEYS = {
    "id", "customer_id", "product_id", "add_ons", "start_at", "end_at", "create_at", "seats", "status", "dns",
    "last_invoice", "upcoming_invoice", "is_free_trial", "trial_end_at", "delinquent_since",
    "originally_licensed_seats", "compliance_blocked", "billing_type", "cancel_at", "will_renew",
}  # fmt: skip


def control(server: ServerProcess, method: str, body: Any = None, token: str = CONTROL_TOKEN) -> httpx.Response:
    """A call of ``/api/v4/canopy/plan`` as the control plane makes it."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, f"{server.base_url}/api/v4/canopy/plan", json=body, headers=headers, timeout=10)


def set_plan(server: ServerProcess, **plan: Any) -> dict[str, Any]:
    """``PUT`` the plan ``plan`` (fields missing from it: those of :data:`ACTIVE`); answers what the server stored."""
    stored: dict[str, Any] = ok(control(server, "PUT", ACTIVE | plan))
    return stored


def stored_plan(server: ServerProcess) -> dict[str, Any]:
    plan: dict[str, Any] = ok(control(server, "GET"))
    return plan


def refused_as_suspended(response: httpx.Response) -> None:
    """The refusal of a write to a suspended workspace: Mattermost's permission error, saying why."""
    assert response.status_code == 403, f"{response.request.method} {response.request.url}: {response.text}"
    body = response.json()
    assert set(body) == ERROR_KEYS and body["status_code"] == 403
    assert body["id"] == "api.context.permissions.app_error"
    assert body["message"] == "You do not have the appropriate permissions."
    assert "suspended" in body["detailed_error"]


@pytest.fixture(scope="module")
def admin_client(server: ServerProcess, admin: Any) -> Driver:
    return driver(server, admin.username, admin.password)


@pytest.fixture(scope="module")
def team(server: ServerProcess, admin_client: Driver) -> dict[str, Any]:
    team: dict[str, Any] = admin_client.teams.get_team_by_name(server.team_name)
    return team


@pytest.fixture(scope="module")
def member(server: ServerProcess, admin_client: Driver, team: dict[str, Any]) -> User:
    """A member of the team, through the REST API (``.api``: bearer token)."""
    make_user(admin_client, team["id"], "payton")
    return login(server.base_url, "payton", "payton-password")


@pytest.fixture(scope="module")
def member_client(server: ServerProcess, member: User) -> Driver:
    return driver(server, "payton", "payton-password")


@pytest.fixture(scope="module")
def cookie_api(server: ServerProcess, member: User) -> Iterator[httpx.Client]:
    """The member through a cookie session: ``POST /posts`` then goes through the framework, not the fast path."""
    with httpx.Client(base_url=f"{server.base_url}/api/v4", timeout=15) as cookies:
        ok(cookies.post("/users/login", json={"login_id": "payton", "password": "payton-password"}))
        cookies.headers["X-Requested-With"] = "XMLHttpRequest"
        yield cookies


@pytest.fixture(scope="module")
def channel_id(member: User, team: dict[str, Any]) -> str:
    body = {"team_id": team["id"], "name": "ledger", "display_name": "Ledger", "type": "O"}
    channel_id: str = ok(member.api.post("/channels", json=body), 201)["id"]
    return channel_id


def upload(api: httpx.Client, channel_id: str, name: str) -> httpx.Response:
    files = {"files": (name, png_bytes(32, 32), "image/png")}
    return api.post("/files", data={"channel_id": channel_id}, files=files)


# --- the control endpoints ------------------------------------------------------------------------------------


def test_the_plan_endpoints_take_the_control_token_only(server: ServerProcess, member: User) -> None:
    set_plan(server, state="trialing", trial_end_at=TRIAL_END)
    for token in ("", "not-the-token", member.token):
        for method, body in (("GET", None), ("PUT", SUSPENDED)):
            refused = control(server, method, body, token=token)
            assert refused.status_code == 401, refused.text
            assert set(refused.json()) == ERROR_KEYS and refused.json()["id"] == "api.canopy.control_token.app_error"
    assert stored_plan(server) == ACTIVE | {"state": "trialing", "trial_end_at": TRIAL_END}


def test_put_stores_the_plan_and_answers_it_every_time(server: ServerProcess, admin_client: Driver) -> None:
    trial = ACTIVE | {"state": "trialing", "trial_end_at": TRIAL_END, "billing_url": BILLING_URL}
    answered = control(server, "PUT", trial)
    assert answered.status_code == 200 and answered.headers["content-type"] == "application/json"
    assert answered.json() == trial and stored_plan(server) == trial
    subscription_id = admin_client.client.get("/cloud/subscription")["id"]
    assert len(subscription_id) == 26
    # The control plane sends the plan after every billing change and on every reconcile: the same answer each time.
    for _ in range(3):
        assert ok(control(server, "PUT", trial)) == trial
    past_due = trial | {"state": "past_due", "delinquent_since": DELINQUENT_SINCE}
    assert ok(control(server, "PUT", past_due)) == past_due and stored_plan(server) == past_due
    assert set_plan(server) == ACTIVE and stored_plan(server) == ACTIVE
    # The plan changed in place: the workspace keeps its one subscription.
    assert admin_client.client.get("/cloud/subscription")["id"] == subscription_id


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"state": "cancelled"}, "state"),
        ({"state": "Suspended"}, "state"),
        ({"state": None}, "state"),
        ({"trial_end_at": -1}, "trial_end_at"),
        ({"trial_end_at": 2**53}, "trial_end_at"),
        ({"trial_end_at": 1.5}, "trial_end_at"),
        ({"trial_end_at": "1900000000000"}, "trial_end_at"),
        ({"trial_end_at": True}, "trial_end_at"),
        ({"delinquent_since": -5}, "delinquent_since"),
        ({"delinquent_since": 2**63}, "delinquent_since"),
        ({"billing_url": "ftp://canopy.example/billing"}, "billing_url"),
        ({"billing_url": "javascript:alert(1)"}, "billing_url"),
        ({"billing_url": "/orgs/acme/billing"}, "billing_url"),
        ({"billing_url": "https://"}, "billing_url"),
        ({"billing_url": "https://canopy example/billing"}, "billing_url"),
        ({"billing_url": "https://owner:secret@canopy.example/billing"}, "billing_url"),
        ({"billing_url": "https://canopy.example:99999/billing"}, "billing_url"),
        ({"billing_url": "https://canopy.example/\x7f"}, "billing_url"),
        ({"billing_url": "https://canopy.example/" + "a" * 2048}, "billing_url"),
        ({"billing_url": None}, "billing_url"),
        ({"plan": "professional"}, "plan"),
    ],
)
def test_bad_plans_are_refused_and_change_nothing(server: ServerProcess, change: dict[str, Any], field: str) -> None:
    stored = set_plan(server, state="trialing", trial_end_at=TRIAL_END)
    refused = control(server, "PUT", stored | change)
    assert refused.status_code == 400, refused.text
    body = refused.json()
    assert set(body) == ERROR_KEYS and body["id"] == "api.context.invalid_body_param.app_error"
    assert field in body["message"]
    assert stored_plan(server) == stored


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"[]",
        b'"suspended"',
        b'{"state": "suspended"}',
        b'{"state": "active", "trial_end_at": 0, "delinquent_since": 0}',
    ],
)
def test_bodies_that_are_not_a_whole_plan_are_refused(server: ServerProcess, body: bytes) -> None:
    stored = set_plan(server)
    refused = httpx.put(
        f"{server.base_url}/api/v4/canopy/plan",
        content=body,
        headers={"Authorization": f"Bearer {CONTROL_TOKEN}", "Content-Type": "application/json"},
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["id"] == "api.context.invalid_body_param.app_error"
    assert stored_plan(server) == stored


# --- suspension ------------------------------------------------------------------------------------------------


def test_a_suspended_workspace_refuses_every_write_of_content(
    server: ServerProcess,
    admin_client: Driver,
    member: User,
    member_client: Driver,
    cookie_api: httpx.Client,
    team: dict[str, Any],
    channel_id: str,
) -> None:
    set_plan(server)
    root = ok(member.api.post("/posts", json={"channel_id": channel_id, "message": "quarterly ledger closed"}), 201)
    attached = ok(upload(member.api, channel_id, "receipt.png"), 201)["file_infos"][0]
    with_file = {"channel_id": channel_id, "message": "the receipt", "file_ids": [attached["id"]]}
    ok(member.api.post("/posts", json=with_file), 201)
    loose = ok(upload(member.api, channel_id, "draft.png"), 201)["file_infos"][0]
    reaction = {"user_id": member.id, "post_id": root["id"], "emoji_name": "ledger"}
    ok(member.api.post("/reactions", json=reaction))
    town_square = admin_client.channels.get_channel_by_name(team["id"], "town-square")
    hook = admin_client.webhooks.create_incoming_hook({"channel_id": town_square["id"], "display_name": "Books"})
    before = ok(member.api.get(f"/channels/{channel_id}/posts"))["order"]
    square_before = ok(member.api.get(f"/channels/{town_square['id']}/posts"))["order"]

    assert set_plan(server, **SUSPENDED) == ACTIVE | SUSPENDED

    # New posts, whichever way they come: mattermostdriver (bearer: the fast path), the route (cookie session),
    # replies, attachments, system admins, incoming webhooks.
    with pytest.raises(NotEnoughPermissions, match="appropriate permissions"):
        member_client.posts.create_post({"channel_id": channel_id, "message": "one more entry"})
    with pytest.raises(NotEnoughPermissions):
        admin_client.posts.create_post({"channel_id": town_square["id"], "message": "admins too"})
    refused_as_suspended(member.api.post("/posts", json={"channel_id": channel_id, "message": "bearer"}))
    refused_as_suspended(cookie_api.post("/posts", json={"channel_id": channel_id, "message": "cookie"}))
    reply = {"channel_id": channel_id, "message": "a reply", "root_id": root["id"]}
    refused_as_suspended(member.api.post("/posts", json=reply))
    refused_as_suspended(member.api.post("/posts", json=with_file | {"file_ids": [loose["id"]]}))
    refused_as_suspended(httpx.post(f"{server.base_url}/hooks/{hook['id']}", json={"text": "from the books"}))
    # Edits, pins, reactions, uploads.
    edit = {"id": root["id"], "message": "ledger reopened"}
    refused_as_suspended(member.api.put(f"/posts/{root['id']}", json=edit))
    refused_as_suspended(member.api.put(f"/posts/{root['id']}/patch", json={"message": "ledger reopened"}))
    refused_as_suspended(member.api.post(f"/posts/{root['id']}/pin"))
    refused_as_suspended(member.api.post("/reactions", json=reaction | {"emoji_name": "tada"}))
    refused_as_suspended(member.api.delete(f"/users/me/posts/{root['id']}/reactions/ledger"))
    refused_as_suspended(upload(member.api, channel_id, "late.png"))
    raw = member.api.post("/files", params={"channel_id": channel_id, "filename": "late.txt"}, content=b"late")
    refused_as_suspended(raw)
    with pytest.raises(NotEnoughPermissions):
        member_client.files.upload_file(channel_id, {"files": ("late.png", png_bytes(8, 8), "image/png")})

    # Nothing of it was written.
    assert ok(member.api.get(f"/channels/{channel_id}/posts"))["order"] == before
    assert ok(member.api.get(f"/channels/{town_square['id']}/posts"))["order"] == square_before
    assert ok(member.api.get(f"/posts/{root['id']}"))["message"] == "quarterly ledger closed"
    assert ok(member.api.get(f"/posts/{root['id']}"))["is_pinned"] is False
    reactions = ok(member.api.get(f"/posts/{root['id']}/reactions"))
    assert [(r["user_id"], r["emoji_name"]) for r in reactions] == [(member.id, "ledger")]
    assert ok(member.api.get(f"/files/{loose['id']}/info"))["post_id"] == ""

    # Signing in and reading keep working, and so do preferences, statuses, the WebSocket and downloads.
    fresh = driver(server, "payton", "payton-password")
    assert fresh.posts.get_post(root["id"])["message"] == "quarterly ledger closed"
    assert root["id"] in fresh.posts.get_posts_for_channel(channel_id)["order"]
    found = fresh.posts.search_for_team_posts(team["id"], {"terms": "quarterly", "is_or_search": False})
    assert root["id"] in found["order"]
    assert "ledger" in {c["name"] for c in fresh.channels.get_channels_for_user("me", team["id"])}
    saved = {"user_id": member.id, "category": "display_settings", "name": "use_military_time", "value": "true"}
    ok(member.api.put("/users/me/preferences", json=[saved]))
    ok(member.api.put("/users/me/status", json={"user_id": member.id, "status": "away"}))
    socket = WsClient(server.base_url, member.token)
    socket.close()
    download = member.api.get(f"/files/{attached['id']}")
    assert download.status_code == 200 and download.content == png_bytes(32, 32)
    # Taking content down stays possible.
    ok(member.api.delete(f"/posts/{root['id']}"))


def test_posting_resumes_on_the_request_after_reactivation(
    server: ServerProcess, member: User, member_client: Driver, cookie_api: httpx.Client, channel_id: str
) -> None:
    for round_trip in range(2):
        set_plan(server, **SUSPENDED)
        refused_as_suspended(member.api.post("/posts", json={"channel_id": channel_id, "message": "held"}))
        set_plan(server, state="past_due", delinquent_since=DELINQUENT_SINCE)
        posted = member_client.posts.create_post({"channel_id": channel_id, "message": f"paid {round_trip}"})
        assert posted["message"] == f"paid {round_trip}"
        ok(cookie_api.post("/posts", json={"channel_id": channel_id, "message": f"cookie {round_trip}"}), 201)
    set_plan(server, **SUSPENDED)
    refused_as_suspended(member.api.post("/posts", json={"channel_id": channel_id, "message": "held again"}))
    set_plan(server)
    ok(member.api.post("/posts", json={"channel_id": channel_id, "message": "active again"}), 201)


def test_every_server_process_sees_the_plan_on_its_next_request(
    server: ServerProcess,
    spawn_server: Callable[..., ServerProcess],
    tmp_path_factory: pytest.TempPathFactory,
    member: User,
    channel_id: str,
) -> None:
    other = spawn_server(server.database_url, tmp_path_factory.mktemp("ws_plan_other"))
    other.wait_ready()
    here, there = member.api, httpx.Client(base_url=f"{other.base_url}/api/v4", headers=member.api.headers)
    post = {"channel_id": channel_id, "message": "from either process"}
    ok(here.post("/posts", json=post), 201)
    ok(there.post("/posts", json=post), 201)
    set_plan(other, **SUSPENDED)
    refused_as_suspended(here.post("/posts", json=post))
    refused_as_suspended(there.post("/posts", json=post))
    set_plan(server)
    ok(there.post("/posts", json=post), 201)
    ok(here.post("/posts", json=post), 201)
    there.close()


# --- what clients see ------------------------------------------------------------------------------------------


def test_a_trial_shows_in_the_licence_and_the_subscription(
    server: ServerProcess, admin_client: Driver, member: User, member_client: Driver, channel_id: str
) -> None:
    set_plan(server, state="trialing", trial_end_at=TRIAL_END, billing_url=BILLING_URL)
    cloud_trial = {"IsLicensed": "true", "Cloud": "true", "IsTrial": "true"}
    assert ok(httpx.get(f"{server.base_url}/api/v4/license/client", params={"format": "old"})) == cloud_trial
    assert ok(member.api.get("/license/client", params={"format": "old"})) == cloud_trial
    licence = admin_client.client.get("/license/client", params={"format": "old"})
    assert licence == cloud_trial | {"ExpiresAt": str(TRIAL_END)}

    usage = httpx.get(f"{server.base_url}/api/v4/canopy/usage", headers={"Authorization": f"Bearer {CONTROL_TOKEN}"})
    seats = ok(usage)["activated_users"]
    full = admin_client.client.get("/cloud/subscription")
    assert set(full) == SUBSCRIPTION_KEYS
    assert full["is_free_trial"] == "true" and full["trial_end_at"] == TRIAL_END and full["end_at"] == TRIAL_END
    assert full["status"] == "trialing" and full["delinquent_since"] is None and full["seats"] == seats >= 2
    # Users who are not system admins get what Mattermost shows them: the trial, no status nor seats.
    shown = member_client.client.get("/cloud/subscription")
    assert set(shown) == SUBSCRIPTION_KEYS and shown["id"] == full["id"]
    assert shown["is_free_trial"] == "true" and shown["trial_end_at"] == TRIAL_END
    assert shown["status"] == "" and shown["seats"] == 0 and shown["delinquent_since"] is None
    # The billing URL is Canopy's own: under /canopy/ only, in no Mattermost answer.
    assert BILLING_URL not in licence.values() and BILLING_URL not in str(full)
    assert stored_plan(server)["billing_url"] == BILLING_URL
    # A trial restricts nothing.
    assert member_client.posts.create_post({"channel_id": channel_id, "message": "on trial"})["message"] == "on trial"


def test_a_delinquent_workspace_shows_since_when(
    server: ServerProcess, admin_client: Driver, member_client: Driver, channel_id: str
) -> None:
    set_plan(server, state="past_due", trial_end_at=TRIAL_END, delinquent_since=DELINQUENT_SINCE)
    licence = admin_client.client.get("/license/client", params={"format": "old"})
    assert licence == {"IsLicensed": "true", "Cloud": "true", "IsTrial": "false"}
    # Mattermost's delinquent_since is in Unix seconds (its web app multiplies it by 1000 for its banner).
    full = admin_client.client.get("/cloud/subscription")
    assert full["delinquent_since"] == DELINQUENT_SINCE // 1000 and full["status"] == "past_due"
    assert full["is_free_trial"] == "false" and full["trial_end_at"] == TRIAL_END and full["end_at"] == 0
    assert member_client.client.get("/cloud/subscription")["delinquent_since"] == DELINQUENT_SINCE // 1000
    # Past due is a warning only: posting goes on.
    assert member_client.posts.create_post({"channel_id": channel_id, "message": "owing"})["message"] == "owing"
    set_plan(server, **SUSPENDED)
    assert admin_client.client.get("/cloud/subscription")["delinquent_since"] == DELINQUENT_SINCE // 1000
    set_plan(server)
    assert admin_client.client.get("/cloud/subscription")["delinquent_since"] is None


def test_the_cloud_products_and_limits_are_empty(server: ServerProcess, member: User) -> None:
    set_plan(server, state="trialing", trial_end_at=TRIAL_END)
    assert ok(member.api.get("/cloud/products")) == []
    assert ok(member.api.get("/cloud/limits")) == {}
    for path in ("subscription", "products", "limits"):
        anonymous = httpx.get(f"{server.base_url}/api/v4/cloud/{path}")
        assert anonymous.status_code == 401 and anonymous.json()["id"] == "api.context.session_expired.app_error"


def test_without_a_plan_nothing_changes(
    create_database: Callable[[str], str],
    spawn_server: Callable[..., ServerProcess],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    bare = spawn_server(create_database("ws_no_plan"), tmp_path_factory.mktemp("ws_no_plan"))
    bare.wait_ready()
    password = "no plan password"
    hashed = PasswordHasher().hash(password)
    body = {"email": "owner@acme.test", "username": "owner", "password_hash": hashed}
    headers = {"Authorization": f"Bearer {CONTROL_TOKEN}"}
    ok(httpx.put(f"{bare.base_url}/api/v4/canopy/initial_admin", json=body, headers=headers))
    owner = login(bare.base_url, "owner", password)
    assert stored_plan(bare) == ACTIVE
    assert ok(httpx.get(f"{bare.base_url}/api/v4/license/client", params={"format": "old"})) == {"IsLicensed": "false"}
    assert ok(owner.api.get("/license/client", params={"format": "old"})) == {"IsLicensed": "false"}
    for path in ("subscription", "products", "limits"):
        refused = owner.api.get(f"/cloud/{path}")
        assert refused.status_code == 403 and refused.json()["id"] == "api.cloud.license_error"
    team_id = ok(owner.api.get(f"/teams/name/{bare.team_name}"))["id"]
    square = ok(owner.api.get(f"/teams/{team_id}/channels/name/town-square"))["id"]
    post = ok(owner.api.post("/posts", json={"channel_id": square, "message": "no plan, no limits"}), 201)
    ok(upload(owner.api, square, "free.png"), 201)
    ok(owner.api.post("/reactions", json={"user_id": owner.id, "post_id": post["id"], "emoji_name": "ok"}))
