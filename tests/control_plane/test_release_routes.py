"""The release and rollout routes that commit then defer (through releases/commands.py and rollouts/commands.py,
shared with the CLI): pin and unpin, a rollout's actions, revoking a release that a rollout carries."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import text

from tests.control_plane.conftest import Owner, staff_token


def operator_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {staff_token(f'op-{uuid.uuid4().hex[:6]}@canopy.example', 'operator')}"}


def publish(client: TestClient, headers: dict[str, str]) -> str:
    version = f"0.{uuid.uuid4().int % 10_000}.0"
    body = {"version": version, "image": f"canopy/ws:{version}", "schema_min": 1}
    r = client.post("/api/v1/releases", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return version


def activated(workspace_id: str) -> None:
    from control_plane.core.db import session_scope

    with session_scope() as session:
        session.execute(text("UPDATE workspaces SET lifecycle_state = 'active' WHERE id = :id"), {"id": workspace_id})
        session.commit()


def test_pin_and_unpin_through_the_api(client: TestClient, sign_up: Callable[[str], Owner]) -> None:
    headers = operator_headers()
    version = publish(client, headers)
    [ws] = client.get("/api/v1/workspaces", headers=sign_up(f"pin-{uuid.uuid4().hex[:6]}").headers).json()["items"]

    body = {"version": version, "reason": "customer acceptance test"}
    r = client.put(f"/api/v1/workspaces/{ws['id']}/release-pin", json=body, headers=headers)
    assert r.status_code == 200, r.text
    assert (r.json()["desired_release"], r.json()["release_pin_reason"]) == (version, "customer acceptance test")
    assert client.delete(f"/api/v1/workspaces/{ws['id']}/release-pin", headers=headers).status_code == 204
    assert client.get(f"/api/v1/workspaces/{ws['id']}", headers=headers).json()["release_pin_reason"] is None


def test_a_rollouts_actions_and_revoking_its_release(client: TestClient, sign_up: Callable[[str], Owner]) -> None:
    headers = operator_headers()
    version = publish(client, headers)
    [ws] = client.get("/api/v1/workspaces", headers=sign_up(f"ro-{uuid.uuid4().hex[:6]}").headers).json()["items"]
    activated(ws["id"])
    body = {"release": version, "selector": {"workspaces": [ws["id"]]}, "plan": {"canaries": 0}}
    r = client.post("/api/v1/rollouts", json=body, headers=headers)
    assert r.status_code == 201, r.text
    rollout_id = r.json()["id"]

    r = client.post(f"/api/v1/rollouts/{rollout_id}/pause", json={"reason": "look first"}, headers=headers)
    assert (r.status_code, r.json()["state"], r.json()["reason"]) == (200, "paused", "look first")
    r = client.post(f"/api/v1/rollouts/{rollout_id}/resume", json={}, headers=headers)
    assert (r.status_code, r.json()["state"]) == (200, "running")

    r = client.patch(f"/api/v1/releases/{version}", json={"state": "revoked"}, headers=headers)
    assert (r.status_code, r.json()["state"]) == (200, "revoked")
    assert client.get(f"/api/v1/rollouts/{rollout_id}", headers=headers).json()["state"] == "aborted"
    r = client.post(f"/api/v1/rollouts/{rollout_id}/rollback", json={}, headers=headers)
    assert (r.status_code, r.json()["state"]) == (200, "rolled_back")
