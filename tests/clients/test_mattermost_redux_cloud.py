"""A suspended Canopy workspace as the Mattermost web app's data layer sees it, through the unmodified
``mattermost-redux`` on Node 20 (``mattermost_redux_cloud.mjs``) against the real server: a cloud licence, the
subscription its delinquency banner reads, empty products and limits, and a post refused in a way the app keeps as
failed (to retry) instead of dropping it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.clients.node_packages import install_node_packages, node_binary
from tests.workspace_server.conftest import CONTROL_TOKEN
from tests.workspace_server.wsclient import login, ok

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
SCRIPT = HERE / "mattermost_redux_cloud.mjs"
DELINQUENT_SINCE = 1_780_000_123_456  # ms


@pytest.fixture(scope="module")
def suspended_run(server: Any, admin: Any) -> dict[str, Any]:
    boss = login(server.base_url, admin.username, admin.password)
    team_id = ok(boss.api.get(f"/teams/name/{server.team_name}"))["id"]
    town_square = ok(boss.api.get(f"/teams/{team_id}/channels/name/town-square"))["id"]
    plan = {"state": "suspended", "trial_end_at": 0, "delinquent_since": DELINQUENT_SINCE, "billing_url": ""}
    headers = {"Authorization": f"Bearer {CONTROL_TOKEN}"}
    ok(httpx.put(f"{server.base_url}/api/v4/canopy/plan", json=plan, headers=headers))
    install_node_packages()
    env = os.environ | {
        "CANOPY_URL": server.base_url,
        "CANOPY_USER": admin.username,
        "CANOPY_PASSWORD": admin.password,
        "CANOPY_CHANNEL_ID": town_square,
    }
    done = subprocess.run([node_binary(), str(SCRIPT)], cwd=HERE, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines, f"no output; stderr:\n{done.stderr}"
    result: dict[str, Any] = json.loads(lines[-1])
    assert "fatal" not in result, f"{result['fatal']}\n{done.stderr[-3000:]}"
    return result


def test_the_app_loads_a_cloud_licence_and_subscription(suspended_run: dict[str, Any]) -> None:
    statuses = {(r["method"], r["path"]): r["status"] for r in suspended_run["requests"]}
    for path in ("license/client", "cloud/subscription", "cloud/products", "cloud/limits"):
        assert statuses[("GET", f"/api/v4/{path}")] == 200, path
    assert suspended_run["license"] == {"IsLicensed": "true", "Cloud": "true", "IsTrial": "false"}
    assert suspended_run["is_cloud"] is True
    assert suspended_run["cloud_errors"] == {}
    assert suspended_run["products"] == {} and suspended_run["subscription_product"] is None
    assert suspended_run["limits"] == {}


def test_the_delinquency_banner_reads_its_date_from_the_subscription(suspended_run: dict[str, Any]) -> None:
    subscription = suspended_run["subscription"]
    # The web app shows its delinquency banner to system admins when delinquent_since is set, a date in seconds.
    assert subscription["delinquent_since"] == DELINQUENT_SINCE // 1000
    assert subscription["status"] == "suspended" and subscription["is_free_trial"] == "false"


def test_a_refused_post_stays_in_the_app_as_failed(suspended_run: dict[str, Any]) -> None:
    failed = [(r["method"], r["path"], r["status"]) for r in suspended_run["requests"] if r["status"] != 200]
    assert failed == [("POST", "/api/v4/posts", 403)]
    assert suspended_run["pending_post"] == {"message": "sent while suspended", "failed": True}
