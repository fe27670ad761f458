"""The Mattermost web app's start-up (``mattermost_redux_startup.mjs``, the unmodified ``mattermost-redux`` on
Node 20) on an Enterprise workspace, whose plan carries a licence: every request succeeds, the store holds the
licence as Mattermost serves a self-hosted Enterprise one (whole for a system admin, with the ``ExpiresAt`` the web
app's expiry and grace banners read; sanitized for a member), and the app calls no cloud route."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.clients.node_packages import install_node_packages, node_binary
from tests.clients.test_mattermost_redux_startup import NOT_YET_SERVED
from tests.workspace_server.conftest import CONTROL_TOKEN
from tests.workspace_server.wsclient import create_user, login, ok

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
SCRIPT = HERE / "mattermost_redux_startup.mjs"
PASSWORD = "enterprise start-up password"
EXPIRES_AT = 1_798_761_600_000  # ms
LICENCE = {
    "sku": "enterprise",
    "company": "Acme Corp",
    "users": 120,
    "starts_at": 1_767_225_600_000,
    "expires_at": EXPIRES_AT,
    "grace_ends_at": EXPIRES_AT + 10 * 86_400_000,
    "read_only": False,
}


def start_up(server: Any, username: str, password: str, status_ids: list[str]) -> dict[str, Any]:
    """What the start-up script reports for ``username``."""
    env = os.environ | {
        "CANOPY_URL": server.base_url,
        "CANOPY_TEAM": server.team_name,
        "CANOPY_USER": username,
        "CANOPY_PASSWORD": password,
        "CANOPY_STATUS_IDS": ",".join(status_ids),
    }
    done = subprocess.run([node_binary(), str(SCRIPT)], cwd=HERE, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert "fatal" not in result, f"{result['fatal']}\n{done.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def runs(server: Any, admin: Any) -> dict[str, dict[str, Any]]:
    """The start-up as the workspace's system admin and as a member, on an Enterprise plan."""
    plan = {"state": "active", "trial_end_at": 0, "delinquent_since": 0, "billing_url": "", "licence": LICENCE}
    ok(
        httpx.put(
            f"{server.base_url}/api/v4/canopy/plan", json=plan, headers={"Authorization": f"Bearer {CONTROL_TOKEN}"}
        )
    )
    boss = login(server.base_url, admin.username, admin.password)
    team_id = ok(boss.api.get(f"/teams/name/{server.team_name}"))["id"]
    member = create_user(boss, server.base_url, f"e{uuid.uuid4().hex[:10]}", team_id, password=PASSWORD)
    install_node_packages()
    ids = [boss.id, member.id]
    return {
        "admin": start_up(server, admin.username, admin.password, ids),
        "member": start_up(server, member.username, PASSWORD, ids),
    }


@pytest.mark.parametrize("who", ["admin", "member"])
def test_no_startup_request_failed_and_no_cloud_route_was_called(runs: dict[str, dict[str, Any]], who: str) -> None:
    requests = runs[who]["requests"]
    failed = [r for r in requests if r["status"] is None or r["status"] >= 400]
    assert [r for r in failed if (r["method"], r["path"]) not in NOT_YET_SERVED] == []
    assert not [r for r in requests if r["path"].startswith("/api/v4/cloud/")]
    assert {name: a for name, a in runs[who]["actions"].items() if "error" in a} == {}


def test_the_store_holds_the_enterprise_licence(runs: dict[str, dict[str, Any]]) -> None:
    full = runs["admin"]["store"]["general"]["license"]
    assert full["IsLicensed"] == "true" and full["Cloud"] == "false" and full["IsTrial"] == "false"
    assert full["SkuShortName"] == "enterprise" and full["Company"] == "Acme Corp" and full["Users"] == "120"
    assert full["ExpiresAt"] == str(EXPIRES_AT)
    sanitized = runs["member"]["store"]["general"]["license"]
    assert sanitized == {
        k: v
        for k, v in full.items()
        if k not in {"Id", "Name", "Email", "IssuedAt", "StartsAt", "ExpiresAt", "SkuName"}
    }
