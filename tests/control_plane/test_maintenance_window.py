"""Maintenance windows through the API: an Enterprise workspace's owner and operators set and clear it (audited);
another organization's workspace is a 404, a pooled one a 409, a bad window a 422; and the CLI verb."""

from __future__ import annotations

import contextlib
import io
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.control_plane.conftest import Owner, staff_token

WINDOW = {"days": [1, 3], "start": "02:00", "duration_minutes": 120, "timezone": "Europe/Paris"}


def window_path(workspace_id: str) -> str:
    return f"/api/v1/workspaces/{workspace_id}/maintenance-window"


def enterprise_workspace(client: TestClient, owner: Owner) -> dict[str, Any]:
    """An Enterprise workspace of the owner's organization (sales and admins make them, not owners)."""
    slug = f"ent-{uuid.uuid4().hex[:6]}"
    admin = {"Authorization": f"Bearer {staff_token(f'ad-{uuid.uuid4().hex[:6]}@canopy.example', 'admin')}"}
    body = {"slug": slug, "tier": "enterprise", "organization_id": owner.organization_id}
    r = client.post("/api/v1/workspaces", json=body, headers=admin)
    assert r.status_code == 201, r.text
    return dict(r.json())


def audited(client: TestClient, headers: dict[str, str], workspace_id: str) -> list[dict[str, Any]]:
    r = client.get("/api/v1/audit", params={"target_id": workspace_id}, headers=headers)
    assert r.status_code == 200, r.text
    return [e for e in r.json()["items"] if e["action"] == "workspace.maintenance_window"]


def test_the_owner_sets_and_clears_an_enterprise_workspaces_window(
    client: TestClient, sign_up: Callable[[str], Owner]
) -> None:
    owner = sign_up(f"mw-{uuid.uuid4().hex[:6]}")
    ws = enterprise_workspace(client, owner)

    r = client.put(window_path(ws["id"]), json=WINDOW, headers=owner.headers)
    assert r.status_code == 200, r.text
    assert r.json()["maintenance_window"] == WINDOW
    assert client.get(f"/api/v1/workspaces/{ws['id']}", headers=owner.headers).json()["maintenance_window"] == WINDOW

    r = client.delete(window_path(ws["id"]), headers=owner.headers)
    assert r.status_code == 204, r.text
    assert client.get(f"/api/v1/workspaces/{ws['id']}", headers=owner.headers).json()["maintenance_window"] is None
    entries = audited(client, owner.headers, ws["id"])
    assert [e["after"]["maintenance_window"] for e in entries] in ([None, WINDOW], [WINDOW, None])


def test_an_operator_sets_any_window_and_support_may_not(client: TestClient, sign_up: Callable[[str], Owner]) -> None:
    owner = sign_up(f"mw-{uuid.uuid4().hex[:6]}")
    ws = enterprise_workspace(client, owner)
    operator = {"Authorization": f"Bearer {staff_token(f'op-{uuid.uuid4().hex[:6]}@canopy.example', 'operator')}"}
    support = {"Authorization": f"Bearer {staff_token(f'su-{uuid.uuid4().hex[:6]}@canopy.example', 'support')}"}

    assert client.put(window_path(ws["id"]), json=WINDOW, headers=operator).status_code == 200
    r = client.put(window_path(ws["id"]), json=WINDOW, headers=support)
    assert r.status_code == 403, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


def test_another_organizations_workspace_is_not_found(client: TestClient, sign_up: Callable[[str], Owner]) -> None:
    owner, stranger = sign_up(f"mw-{uuid.uuid4().hex[:6]}"), sign_up(f"mw-{uuid.uuid4().hex[:6]}")
    ws = enterprise_workspace(client, owner)

    for r in (
        client.put(window_path(ws["id"]), json=WINDOW, headers=stranger.headers),
        client.delete(window_path(ws["id"]), headers=stranger.headers),
    ):
        assert r.status_code == 404, r.text
    assert client.get(f"/api/v1/workspaces/{ws['id']}", headers=owner.headers).json()["maintenance_window"] is None


def test_a_pooled_workspace_follows_the_fleets_schedule(client: TestClient, sign_up: Callable[[str], Owner]) -> None:
    owner = sign_up(f"mw-{uuid.uuid4().hex[:6]}")
    [signed_up] = client.get("/api/v1/workspaces", headers=owner.headers).json()["items"]
    professional = signed_up["id"]
    assert signed_up["tier"] == "professional"

    r = client.put(window_path(professional), json=WINDOW, headers=owner.headers)
    assert r.status_code == 409, r.text
    assert "pooled workspaces follow the fleet's schedule" in r.json()["detail"]


@pytest.mark.parametrize(
    "change",
    [
        {"days": []},
        {"days": [7]},
        {"start": "25:00"},
        {"duration_minutes": 10},
        {"timezone": "Mars/Olympus"},
        {"colour": "blue"},
    ],
)
def test_a_bad_window_is_refused_per_field(
    client: TestClient, sign_up: Callable[[str], Owner], change: dict[str, Any]
) -> None:
    owner = sign_up(f"mw-{uuid.uuid4().hex[:6]}")
    ws = enterprise_workspace(client, owner)

    r = client.put(window_path(ws["id"]), json=WINDOW | change, headers=owner.headers)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


def cli(*argv: str) -> tuple[int, str]:
    from control_plane.cli import main as cli_main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli_main(list(argv))
    return code, out.getvalue()


def test_the_cli_verb_sets_and_clears_a_window(client: TestClient, sign_up: Callable[[str], Owner]) -> None:
    owner = sign_up(f"mw-{uuid.uuid4().hex[:6]}")
    ws = enterprise_workspace(client, owner)
    verb = ("workspaces", "maintenance-window", ws["id"])

    code, out = cli(*verb, "--days", "1,3", "--start", "02:00", "--minutes", "120", "--timezone", "Europe/Paris")
    assert (code, json.loads(out)) == (0, WINDOW)
    assert cli(*verb, "--days", "1,3", "--start", "2am", "--minutes", "120")[0] == 2
    assert cli(*verb, "--days", "monday", "--start", "02:00", "--minutes", "120")[0] == 2
    assert cli(*verb, "--clear") == (0, "null\n")
    assert client.get(f"/api/v1/workspaces/{ws['id']}", headers=owner.headers).json()["maintenance_window"] is None
    pooled = client.get("/api/v1/workspaces", headers=owner.headers).json()["items"]
    professional = next(w["id"] for w in pooled if w["tier"] == "professional")
    assert cli("workspaces", "maintenance-window", professional, "--clear")[0] == 1
