"""The release catalogue through the API: who may publish, immutability, state moves, pins, fleet counts, audit;
and the rollout routes' refusals (problem+json, never a 5xx)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.control_plane.conftest import Owner, staff_token

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def operator(client: TestClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {staff_token('releases-operator@canopy.example', 'operator')}"}


@pytest.fixture(scope="module")
def support(client: TestClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {staff_token('releases-support@canopy.example', 'support')}"}


def release(version: str, **extra: Any) -> dict[str, Any]:
    return {"version": version, "image": f"ghcr.io/canopy/workspace-server:{version}", "schema_min": 7} | extra


def test_an_operator_publishes_a_release_once_and_it_is_audited(client: TestClient, operator: dict[str, str]) -> None:
    body = release("1.2.0", notes="Faster search", local_command=["/usr/bin/env", "python3", "-m", "workspace_server"])
    created = client.post("/api/v1/releases", json=body, headers=operator)
    assert created.status_code == 201, created.text
    assert created.json() | {"id": None, "created_at": None} == {
        **body,
        "id": None,
        "schema_max": None,
        "state": "candidate",
        "created_by": created.json()["created_by"],
        "created_at": None,
        "desired": 0,
        "observed": 0,
    }
    again = client.post("/api/v1/releases", json=body | {"image": "ghcr.io/canopy/other:1"}, headers=operator)
    assert again.status_code == 409 and again.headers["content-type"] == PROBLEM
    assert client.get("/api/v1/releases/1.2.0", headers=operator).json()["image"] == body["image"]
    audit = client.get("/api/v1/audit", params={"action": "release.publish"}, headers=operator).json()
    assert any(e["after"]["version"] == "1.2.0" for e in audit["items"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (release("1.2"), "version"),
        (release("1.2.3-" + "x" * 40), "version"),
        (release("1.3.0", image="Not An Image!"), "image"),
        (release("1.3.0", schema_min=9, schema_max=8), "schema_max"),
        (release("1.3.0", local_command=[]), "local_command"),
        (release("1.3.0", schema_min=-1), "schema_min"),
        (release("1.3.0") | {"extra": 1}, "extra"),
    ],
)
def test_bad_releases_are_refused_with_the_field(
    client: TestClient, operator: dict[str, str], body: dict[str, Any], field: str
) -> None:
    r = client.post("/api/v1/releases", json=body, headers=operator)
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, r.text
    assert field in r.text


def test_only_operators_and_admins_change_releases_and_support_reads(
    client: TestClient, support: dict[str, str], sign_up: Callable[[str], Owner]
) -> None:
    owner = sign_up("release-owner")
    assert client.post("/api/v1/releases", json=release("1.4.0"), headers=support).status_code == 403
    assert client.post("/api/v1/releases", json=release("1.4.0"), headers=owner.headers).status_code == 403
    assert client.get("/api/v1/releases", headers=owner.headers).status_code == 403
    assert client.get("/api/v1/releases", headers=support).status_code == 200
    assert client.get("/api/v1/releases").status_code == 401


def test_the_bundled_release_is_in_the_catalogue_and_the_fleet_is_counted_by_release(
    client: TestClient, operator: dict[str, str], sign_up: Callable[[str], Owner]
) -> None:
    sign_up("fleet-counted")
    releases = {r["version"]: r for r in client.get("/api/v1/releases", headers=operator).json()}
    assert releases["0.1.0"]["state"] == "stable" and releases["0.1.0"]["desired"] >= 1
    fleet = client.get("/api/v1/releases/fleet", headers=operator).json()
    assert sum(row["count"] for row in fleet if row["desired_release"] == "0.1.0") == releases["0.1.0"]["desired"]
    assert {"desired_release", "observed_release", "tier", "cell", "lifecycle_state", "count"} == set(fleet[0])


def test_state_moves_forward_only(client: TestClient, operator: dict[str, str]) -> None:
    assert client.post("/api/v1/releases", json=release("1.5.0"), headers=operator).status_code == 201
    promoted = client.patch("/api/v1/releases/1.5.0", json={"state": "stable"}, headers=operator)
    assert promoted.status_code == 200 and promoted.json()["state"] == "stable"
    back = client.patch("/api/v1/releases/1.5.0", json={"state": "candidate"}, headers=operator)
    assert back.status_code == 409 and back.headers["content-type"] == PROBLEM
    revoked = client.patch("/api/v1/releases/1.5.0", json={"state": "revoked"}, headers=operator)
    assert revoked.json()["state"] == "revoked"
    assert client.patch("/api/v1/releases/9.9.9", json={"state": "stable"}, headers=operator).status_code == 404


def test_an_operator_pins_a_workspace_with_a_reason_and_unpins_it(
    client: TestClient, operator: dict[str, str], sign_up: Callable[[str], Owner]
) -> None:
    owner = sign_up("pinned-one")
    workspace_id = _first_workspace(client, owner)
    assert client.post("/api/v1/releases", json=release("1.6.0"), headers=operator).status_code == 201
    pin = {"version": "1.6.0", "reason": "customer asked to hold until Monday"}
    r = client.put(f"/api/v1/workspaces/{workspace_id}/release-pin", json=pin, headers=operator)
    assert r.status_code == 200, r.text
    assert (r.json()["desired_release"], r.json()["release_pin_reason"]) == ("1.6.0", pin["reason"])
    assert (
        client.put(f"/api/v1/workspaces/{workspace_id}/release-pin", json=pin, headers=owner.headers).status_code == 403
    )
    unknown = client.put(
        f"/api/v1/workspaces/{workspace_id}/release-pin", json=pin | {"version": "7.7.7"}, headers=operator
    )
    assert unknown.status_code == 404 and unknown.headers["content-type"] == PROBLEM
    client.patch("/api/v1/releases/1.6.0", json={"state": "revoked"}, headers=operator)
    refused = client.put(f"/api/v1/workspaces/{workspace_id}/release-pin", json=pin, headers=operator)
    assert refused.status_code == 409 and "revoked" in refused.json()["detail"]
    assert client.delete(f"/api/v1/workspaces/{workspace_id}/release-pin", headers=operator).status_code == 204
    shown = client.get(f"/api/v1/workspaces/{workspace_id}", headers=operator).json()
    assert shown["release_pin_reason"] is None and shown["desired_release"] == "1.6.0"


def _first_workspace(client: TestClient, owner: Owner) -> str:
    items = client.get("/api/v1/workspaces", headers=owner.headers).json()["items"]
    return str(items[0]["id"])


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"release": "8.8.8"}, 404),
        ({"release": "1.2.0", "selector": {"percent": 0}}, 422),
        ({"release": "1.2.0", "plan": {"failure_budget": 2}}, 422),
        ({"release": "1.2.0", "plan": {"canaries": -1}}, 422),
        ({"release": "1.2.0", "selector": {"tiers": ["gold"]}}, 422),
        ({"release": "1.2.0", "selector": {"organizations": ["not-a-uuid"]}}, 422),
        ({"release": "1.2.0", "selector": {"cells": ["no-such-cell"]}}, 409),
    ],
)
def test_rollout_requests_that_cannot_start_are_refused_clearly(
    client: TestClient, operator: dict[str, str], body: dict[str, Any], status: int
) -> None:
    if client.get("/api/v1/releases/1.2.0", headers=operator).status_code == 404:
        client.post("/api/v1/releases", json=release("1.2.0"), headers=operator)
    r = client.post("/api/v1/rollouts", json=body, headers=operator)
    assert r.status_code == status and r.headers["content-type"] == PROBLEM, r.text
    for verb in ("pause", "resume", "abort", "rollback"):
        missing = client.post(
            f"/api/v1/rollouts/00000000-0000-0000-0000-000000000000/{verb}", json={}, headers=operator
        )
        assert missing.status_code == 404
