"""An Enterprise workspace's licence in its plan (``PUT /api/v4/canopy/plan`` ``licence``), against the real server
and PostgreSQL: stored and answered back; validated strictly; shown to clients as Mattermost shows a self-hosted
Enterprise licence (whole for system admins, sanitized for everyone else); and, once the control plane says
``read_only``, a workspace that refuses every write of content, as a suspended one does, while signing in, reading
and search keep working and nothing is lost; lifting it restores writing."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from mattermostdriver import Driver
from mattermostdriver.exceptions import NotEnoughPermissions

from tests.workspace_server.conftest import ServerProcess
from tests.workspace_server.content_helpers import driver, make_user, png_bytes
from tests.workspace_server.test_plan import ACTIVE, ERROR_KEYS, control, set_plan, stored_plan, upload
from tests.workspace_server.wsclient import User, WsClient, login, ok

DAY_MS = 86_400_000
STARTS_AT = 1_767_225_600_000  # 2026-01-01T00:00:00Z
EXPIRES_AT = 1_798_761_600_000  # 2027-01-01T00:00:00Z
LICENCE = {
    "sku": "enterprise",
    "company": "Acme Corp",
    "users": 120,
    "starts_at": STARTS_AT,
    "expires_at": EXPIRES_AT,
    "grace_ends_at": EXPIRES_AT + 10 * DAY_MS,
    "read_only": False,
}
EXPIRED = LICENCE | {"read_only": True}
# Mattermost's client licence fields (utils.GetClientLicense), and those it leaves out for users who may not read
# the licence information (utils.GetSanitizedClientLicense).
FEATURES = {
    "LDAP", "LDAPGroups", "MFA", "SAML", "Cluster", "Metrics", "GoogleOAuth", "Office365OAuth", "OpenId",
    "Compliance", "MHPNS", "Announcement", "Elasticsearch", "DataRetention", "IDLoadedPushNotifications",
    "EmailNotificationContents", "MessageExport", "CustomPermissionsSchemes", "GuestAccounts",
    "GuestAccountsPermissions", "CustomTermsOfService", "LockTeammateNameDisplay", "SharedChannels",
    "RemoteClusterService", "OutgoingOAuthConnections",
}  # fmt: skip
ADMIN_ONLY = {"Id", "Name", "Email", "IssuedAt", "StartsAt", "ExpiresAt", "SkuName"}
CLIENT_LICENCE_KEYS = {
    "IsLicensed", "Id", "SkuName", "SkuShortName", "Users", "IssuedAt", "StartsAt", "ExpiresAt", "Name", "Email",
    "Company", "Cloud", "IsTrial", "IsGovSku",
} | FEATURES  # fmt: skip


def enterprise(**licence: Any) -> dict[str, Any]:
    """An Enterprise workspace's plan: active, with :data:`LICENCE` changed by ``licence``."""
    return ACTIVE | {"licence": LICENCE | licence}


def client_licence(api: httpx.Client) -> dict[str, str]:
    licence: dict[str, str] = ok(api.get("/license/client", params={"format": "old"}))
    return licence


def exported_messages(server: ServerProcess) -> set[str]:
    """The messages of the workspace's export (``GET /api/v4/canopy/export``)."""
    headers = {"Authorization": f"Bearer {server.control_token}"}
    response = httpx.get(f"{server.base_url}/api/v4/canopy/export", headers=headers, timeout=60)
    assert response.status_code == 200
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        [name] = [n for n in archive.namelist() if n.endswith(".jsonl")]
        lines = [json.loads(line) for line in archive.read(name).splitlines()]
    return {line["post"]["message"] for line in lines if line["type"] == "post"}


def refused_as_expired(response: httpx.Response) -> None:
    """The refusal of a write once the licence has expired past its grace: Mattermost's permission error, saying
    why."""
    assert response.status_code == 403, f"{response.request.method} {response.request.url}: {response.text}"
    body = response.json()
    assert set(body) == ERROR_KEYS and body["status_code"] == 403
    assert body["id"] == "api.context.permissions.app_error"
    assert body["message"] == "You do not have the appropriate permissions."
    assert "licence has expired" in body["detailed_error"] and "renewed" in body["detailed_error"]


@pytest.fixture(scope="module")
def admin_user(server: ServerProcess, admin: Any) -> User:
    return login(server.base_url, admin.username, admin.password)


@pytest.fixture(scope="module")
def team_id(admin_user: User, server: ServerProcess) -> str:
    team_id: str = ok(admin_user.api.get(f"/teams/name/{server.team_name}"))["id"]
    return team_id


@pytest.fixture(scope="module")
def member(server: ServerProcess, admin: Any, team_id: str) -> User:
    make_user(driver(server, admin.username, admin.password), team_id, "quinn")
    return login(server.base_url, "quinn", "quinn-password")


@pytest.fixture(scope="module")
def member_client(server: ServerProcess, member: User) -> Driver:
    return driver(server, "quinn", "quinn-password")


@pytest.fixture(scope="module")
def channel_id(member: User, team_id: str) -> str:
    body = {"team_id": team_id, "name": "contracts", "display_name": "Contracts", "type": "O"}
    channel_id: str = ok(member.api.post("/channels", json=body), 201)["id"]
    return channel_id


# --- the control endpoints ------------------------------------------------------------------------------------


def test_the_licence_is_stored_and_answered_back(server: ServerProcess) -> None:
    plan = enterprise()
    answered = control(server, "PUT", plan)
    assert answered.status_code == 200 and answered.json() == plan
    assert stored_plan(server) == plan
    for _ in range(2):  # the control plane resends it on every reconcile
        assert ok(control(server, "PUT", plan)) == plan
    renewed = enterprise(expires_at=EXPIRES_AT + 365 * DAY_MS, grace_ends_at=EXPIRES_AT + 375 * DAY_MS, users=150)
    assert ok(control(server, "PUT", renewed)) == renewed and stored_plan(server) == renewed
    # Without a licence, or with a null one, the plan is answered as it always was: four fields.
    assert set_plan(server) == ACTIVE and stored_plan(server) == ACTIVE
    set_plan(server, **enterprise())
    assert ok(control(server, "PUT", ACTIVE | {"licence": None})) == ACTIVE and stored_plan(server) == ACTIVE


@pytest.mark.parametrize(
    ("licence", "field"),
    [
        ("enterprise", "licence"),
        ([], "licence"),
        (LICENCE | {"sku": "professional"}, "sku"),
        (LICENCE | {"sku": "Enterprise"}, "sku"),
        (LICENCE | {"company": ""}, "company"),
        (LICENCE | {"company": "A" * 257}, "company"),
        (LICENCE | {"company": 42}, "company"),
        (LICENCE | {"users": 0}, "users"),
        (LICENCE | {"users": -120}, "users"),
        (LICENCE | {"users": 2**31}, "users"),
        (LICENCE | {"users": 120.0}, "users"),
        (LICENCE | {"users": "120"}, "users"),
        (LICENCE | {"users": True}, "users"),
        (LICENCE | {"starts_at": -1}, "starts_at"),
        (LICENCE | {"expires_at": 2**53}, "expires_at"),
        (LICENCE | {"grace_ends_at": 2**63}, "grace_ends_at"),
        (LICENCE | {"expires_at": "1798761600000"}, "expires_at"),
        (LICENCE | {"read_only": 1}, "read_only"),
        (LICENCE | {"read_only": "true"}, "read_only"),
        (LICENCE | {"read_only": None}, "read_only"),
        (LICENCE | {"expires_at": STARTS_AT}, "licence"),
        (LICENCE | {"grace_ends_at": EXPIRES_AT - 1}, "licence"),
        (LICENCE | {"seats": 120}, "seats"),
        ({k: v for k, v in LICENCE.items() if k != "read_only"}, "read_only"),
        ({k: v for k, v in LICENCE.items() if k != "company"}, "company"),
    ],
)
def test_bad_licences_are_refused_and_change_nothing(server: ServerProcess, licence: Any, field: str) -> None:
    stored = set_plan(server, licence=EXPIRED)
    refused = control(server, "PUT", ACTIVE | {"licence": licence})
    assert refused.status_code == 400, refused.text
    body = refused.json()
    assert set(body) == ERROR_KEYS and body["id"] == "api.context.invalid_body_param.app_error"
    assert field in body["message"]
    assert stored_plan(server) == stored


# --- what clients see ------------------------------------------------------------------------------------------


def test_admins_see_the_whole_enterprise_licence_and_others_a_sanitized_one(
    server: ServerProcess, admin_user: User, member: User
) -> None:
    set_plan(server, **enterprise())
    full = client_licence(admin_user.api)
    assert set(full) == CLIENT_LICENCE_KEYS
    assert {k: full[k] for k in ("IsLicensed", "Cloud", "IsTrial", "IsGovSku")} == {
        "IsLicensed": "true",
        "Cloud": "false",
        "IsTrial": "false",
        "IsGovSku": "false",
    }
    assert full["SkuShortName"] == "enterprise" and full["SkuName"] == "Enterprise"
    assert full["Company"] == "Acme Corp" and full["Users"] == "120"
    # The web app's expiry banner (60 days before) and grace banner (10 days after) read ExpiresAt.
    assert full["StartsAt"] == full["IssuedAt"] == str(STARTS_AT) and full["ExpiresAt"] == str(EXPIRES_AT)
    assert len(full["Id"]) == 26 and full["Name"] == full["Email"] == ""
    assert all(full[feature] == "false" for feature in FEATURES)
    # Everyone else, signed in or not, gets Mattermost's sanitized licence: no id, dates or SKU name.
    sanitized = {k: v for k, v in full.items() if k not in ADMIN_ONLY}
    assert client_licence(member.api) == sanitized
    assert client_licence(httpx.Client(base_url=f"{server.base_url}/api/v4")) == sanitized
    assert sanitized["SkuShortName"] == "enterprise" and "ExpiresAt" not in sanitized
    # A renewal moves the dates the banners read; read-only changes nothing of the licence's shape.
    renewed = EXPIRES_AT + 365 * DAY_MS
    set_plan(server, **enterprise(expires_at=renewed, grace_ends_at=renewed + 10 * DAY_MS))
    assert client_licence(admin_user.api)["ExpiresAt"] == str(renewed)
    set_plan(server, **enterprise(read_only=True))
    assert client_licence(admin_user.api) == full
    set_plan(server)


def test_an_enterprise_workspace_is_not_a_cloud_one(server: ServerProcess, member: User) -> None:
    set_plan(server, **enterprise())
    for path in ("subscription", "products", "limits"):
        refused = member.api.get(f"/cloud/{path}")
        assert refused.status_code == 403 and refused.json()["id"] == "api.cloud.license_error"
    # The same workspace on a self-serve plan again is a cloud one.
    set_plan(server)
    assert client_licence(member.api) == {"IsLicensed": "true", "Cloud": "true", "IsTrial": "false"}
    assert ok(member.api.get("/cloud/limits")) == {}


# --- read-only -------------------------------------------------------------------------------------------------


def test_an_expired_licence_refuses_writes_and_keeps_everything_readable(
    server: ServerProcess,
    admin: Any,
    admin_user: User,
    member: User,
    member_client: Driver,
    team_id: str,
    channel_id: str,
) -> None:
    set_plan(server, **enterprise())
    root = ok(member.api.post("/posts", json={"channel_id": channel_id, "message": "renewal quote attached"}), 201)
    attached = ok(upload(member.api, channel_id, "quote.png"), 201)["file_infos"][0]
    with_file = {"channel_id": channel_id, "message": "quote", "file_ids": [attached["id"]]}
    ok(member.api.post("/posts", json=with_file), 201)
    reaction = {"user_id": member.id, "post_id": root["id"], "emoji_name": "memo"}
    ok(member.api.post("/reactions", json=reaction))
    hook = ok(admin_user.api.post("/hooks/incoming", json={"channel_id": channel_id, "display_name": "CRM"}), 201)
    before = ok(member.api.get(f"/channels/{channel_id}/posts"))

    set_plan(server, **enterprise(read_only=True))

    # Through the unmodified mattermostdriver, as member and as system admin.
    with pytest.raises(NotEnoughPermissions, match="appropriate permissions"):
        member_client.posts.create_post({"channel_id": channel_id, "message": "after expiry"})
    with pytest.raises(NotEnoughPermissions):
        driver(server, admin.username, admin.password).posts.create_post({"channel_id": channel_id, "message": "x"})
    with pytest.raises(NotEnoughPermissions):
        member_client.reactions.create_reaction(reaction | {"emoji_name": "tada"})
    with pytest.raises(NotEnoughPermissions):
        member_client.files.upload_file(channel_id, {"files": ("late.png", png_bytes(8, 8), "image/png")})
    # Raw HTTP: the reason is in detailed_error.
    refused_as_expired(member.api.post("/posts", json={"channel_id": channel_id, "message": "raw"}))
    refused_as_expired(
        member.api.post("/posts", json={"channel_id": channel_id, "message": "r", "root_id": root["id"]})
    )
    refused_as_expired(member.api.put(f"/posts/{root['id']}/patch", json={"message": "rewritten"}))
    refused_as_expired(member.api.post(f"/posts/{root['id']}/pin"))
    refused_as_expired(member.api.post("/reactions", json=reaction | {"emoji_name": "tada"}))
    refused_as_expired(member.api.delete(f"/users/me/posts/{root['id']}/reactions/memo"))
    refused_as_expired(upload(member.api, channel_id, "late.png"))
    refused_as_expired(httpx.post(f"{server.base_url}/hooks/{hook['id']}", json={"text": "from the CRM"}))
    with httpx.Client(base_url=f"{server.base_url}/api/v4", timeout=15) as cookies:  # the framework's path
        ok(cookies.post("/users/login", json={"login_id": "quinn", "password": "quinn-password"}))
        cookies.headers["X-Requested-With"] = "XMLHttpRequest"
        refused_as_expired(cookies.post("/posts", json={"channel_id": channel_id, "message": "cookie"}))

    # Nothing was written, nothing was lost; signing in, reading, search and downloads work.
    fresh = driver(server, "quinn", "quinn-password")
    assert fresh.posts.get_posts_for_channel(channel_id)["order"] == before["order"]
    assert fresh.posts.get_post(root["id"])["message"] == "renewal quote attached"
    found = fresh.posts.search_for_team_posts(team_id, {"terms": "renewal", "is_or_search": False})
    assert root["id"] in found["order"]
    assert [r["emoji_name"] for r in ok(member.api.get(f"/posts/{root['id']}/reactions"))] == ["memo"]
    download = member.api.get(f"/files/{attached['id']}")
    assert download.status_code == 200 and download.content == png_bytes(32, 32)
    saved = {"user_id": member.id, "category": "display_settings", "name": "use_military_time", "value": "true"}
    ok(member.api.put("/users/me/preferences", json=[saved]))
    WsClient(server.base_url, member.token).close()
    assert "renewal quote attached" in exported_messages(server)

    # Renewal (read_only lifted, later dates): writing resumes on the next request.
    renewed = EXPIRES_AT + 365 * DAY_MS
    set_plan(server, **enterprise(expires_at=renewed, grace_ends_at=renewed + 10 * DAY_MS))
    posted = member_client.posts.create_post({"channel_id": channel_id, "message": "renewed"})
    member_client.reactions.create_reaction(reaction | {"emoji_name": "tada"})
    ok(upload(member.api, channel_id, "signed.png"), 201)
    after = ok(member.api.get(f"/channels/{channel_id}/posts"))["order"]
    assert after[0] == posted["id"] and set(before["order"]) < set(after)
    set_plan(server)


def test_suspension_wins_over_a_valid_licence_and_says_so(server: ServerProcess, member: User, channel_id: str) -> None:
    set_plan(server, state="suspended", licence=EXPIRED)
    refused = member.api.post("/posts", json={"channel_id": channel_id, "message": "both"})
    assert refused.status_code == 403 and "suspended" in refused.json()["detailed_error"]
    set_plan(server, state="suspended", licence=LICENCE)
    assert (
        "suspended"
        in member.api.post("/posts", json={"channel_id": channel_id, "message": "x"}).json()["detailed_error"]
    )
    set_plan(server, licence=LICENCE)
    ok(member.api.post("/posts", json={"channel_id": channel_id, "message": "active with a licence"}), 201)
    set_plan(server)


def test_every_server_process_sees_the_expiry_on_its_next_request(
    server: ServerProcess,
    spawn_server: Callable[..., ServerProcess],
    tmp_path_factory: pytest.TempPathFactory,
    member: User,
    channel_id: str,
) -> None:
    other = spawn_server(server.database_url, tmp_path_factory.mktemp("ws_licence_other"))
    other.wait_ready()
    here, there = member.api, httpx.Client(base_url=f"{other.base_url}/api/v4", headers=member.api.headers)
    post = {"channel_id": channel_id, "message": "from either process"}
    set_plan(other, **enterprise(read_only=True))
    refused_as_expired(here.post("/posts", json=post))
    refused_as_expired(there.post("/posts", json=post))
    set_plan(server, **enterprise())
    ok(there.post("/posts", json=post), 201)
    ok(here.post("/posts", json=post), 201)
    there.close()
    set_plan(server)
