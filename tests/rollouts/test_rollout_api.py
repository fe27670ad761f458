"""Bad rollout requests get a problem+json answer that says what is wrong, never a 5xx, and change nothing."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from control_plane.core.authz import Role
from tests.reconciler.conftest import Plane, plane_context
from workspace_server.release import SCHEMA_REVISION


@pytest.fixture(scope="module")
def api_plane(create_database: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    """A control plane without workers (nothing here should start anything)."""
    with plane_context(create_database, tmp_path_factory, "rollout_api") as plane:
        yield plane


def problem(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    body = dict(answer.json())
    assert body["status"] == status and body["detail"]
    return body


def rollouts_of(plane: Plane, headers: dict[str, str]) -> list[Any]:
    answer = plane.api.get("/api/v1/rollouts", headers=headers)
    assert answer.status_code == 200, answer.text
    return list(answer.json())


def publish(plane: Plane, headers: dict[str, str]) -> str:
    version = f"3.0.0-api{uuid.uuid4().hex[:6]}"
    body = {"version": version, "image": f"ghcr.io/canopy/workspace-server:{version}", "schema_min": SCHEMA_REVISION}
    answer = plane.api.post("/api/v1/releases", json=body, headers=headers)
    assert answer.status_code == 201, answer.text
    return version


def test_bad_rollout_requests_are_refused_with_a_problem_and_change_nothing(api_plane: Plane) -> None:
    plane = api_plane
    operator = plane.staff_headers(Role.operator)
    provisioning = plane.create_workspace(f"api{uuid.uuid4().hex[:6]}")
    version = publish(plane, operator)
    revoked = publish(plane, operator)
    assert plane.api.patch(f"/api/v1/releases/{revoked}", json={"state": "revoked"}, headers=operator).is_success
    before = rollouts_of(plane, operator)

    def start(body: dict[str, Any], headers: dict[str, str] = operator) -> httpx.Response:
        answer: httpx.Response = plane.api.post("/api/v1/rollouts", json=body, headers=headers)
        return answer

    bad_version = problem(start({"release": "latest"}), 422)
    assert any("release" in str(e) for e in bad_version["errors"]), bad_version
    assert problem(start({"release": "9.9.9"}), 404)["detail"] == "Release 9.9.9 was not found"
    assert problem(start({"release": revoked}), 409)["type"].endswith("release-revoked")
    nobody = {"release": version, "selector": {"workspaces": [str(uuid.uuid4())]}}
    assert problem(start(nobody), 409)["type"].endswith("nothing-to-roll-out")
    not_running = {"release": version, "selector": {"workspaces": [str(provisioning)]}}
    assert problem(start(not_running), 409)["type"].endswith("nothing-to-roll-out")
    for plan in ({"canaries": -1}, {"growth": 0.5}, {"max_per_cell": 0}, {"failure_budget": 2}, {"waves": 3}):
        problem(start({"release": version, "plan": plan}), 422)
    problem(start({"release": version, "selector": {"percent": 0}}), 422)
    for role in (Role.support, Role.owner):
        headers = plane.staff_headers(role) if role is Role.support else plane.owner_headers[provisioning]
        problem(start({"release": version}, headers), 403)
    problem(plane.api.post("/api/v1/rollouts", json={"release": version}), 401)

    unknown = uuid.uuid4()
    problem(plane.api.get(f"/api/v1/rollouts/{unknown}", headers=operator), 404)
    problem(plane.api.post(f"/api/v1/rollouts/{unknown}/pause", json={}, headers=operator), 404)
    problem(plane.api.post(f"/api/v1/rollouts/{unknown}/rollback", json={"reason": "x" * 501}, headers=operator), 422)
    assert rollouts_of(plane, operator) == before == []
