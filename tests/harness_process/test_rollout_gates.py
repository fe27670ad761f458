"""Rollout health gates on Kubernetes for real: the test kubelet runs each Pod as a workspace-server process, the
engine pings each upgraded workspace at its public URL (through the stand-in ingress) and reads its ``/metrics``.

- A good release (the same server reporting 0.2.0) rolls over three workspaces: canary, then waves; every one
  serves 0.2.0 at its public URL and its Pods run the new image.
- A bad release that runs and answers but fails one API request in two: its canary fails the error-rate gate
  during the soak while clients use it, the rollout pauses itself and says why, the canary returns to its previous
  release, and no other workspace is touched.
"""

from __future__ import annotations

import contextlib
import ssl
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from control_plane.kube.client import KubeClient
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Tier
from tests.harness.fixtures import FAULTY_IMAGE, FAULTY_RELEASE, NEXT_IMAGE, NEXT_RELEASE
from tests.harness.ingress import StandInIngress
from tests.provisioning.conftest import new_workspace
from tests.reconciler.conftest import Plane
from tests.waiting import wait_until

pytestmark = pytest.mark.slow
PING = "/api/v4/system/ping"
SCHEMA = 7


@pytest.fixture(scope="module")
def fleet(plane: Plane) -> list[uuid.UUID]:
    """Three Professional workspaces, serving (trialing) on the process cluster."""
    ids = [new_workspace(plane, f"roll{uuid.uuid4().hex[:6]}", Tier.professional) for _ in range(3)]
    if not plane.workers:
        plane.start_worker()
    from control_plane.reconciler.queue import Cause, defer_reconcile

    for ws_id in ids:
        defer_reconcile(ws_id, Cause.signup)
    for ws_id in ids:
        plane.wait_state(ws_id, Lifecycle.trialing, timeout=180)
    return ids


@pytest.fixture
def public(ingress: StandInIngress) -> Iterator[httpx.Client]:
    """A client reaching public URLs through the stand-in ingress (as the control plane does)."""
    context = ssl.create_default_context(cafile=ingress.ca_file)
    with httpx.Client(proxy=ingress.url, verify=context, timeout=5) as client:
        yield client


def publish(plane: Plane, version: str, image: str) -> None:
    if plane.as_operator("GET", f"/api/v1/releases/{version}").status_code == 404:
        body = {"version": version, "image": image, "schema_min": SCHEMA}
        assert plane.as_operator("POST", "/api/v1/releases", json=body).status_code == 201


def start(plane: Plane, version: str, ids: list[uuid.UUID], **plan: Any) -> str:
    body = {"release": version, "selector": {"workspaces": [str(i) for i in ids]}, "plan": plan}
    r = plane.as_operator("POST", "/api/v1/rollouts", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def rollout(plane: Plane, rollout_id: str) -> dict[str, Any]:
    return dict(plane.as_operator("GET", f"/api/v1/rollouts/{rollout_id}").json())


def targets(plane: Plane, rollout_id: str) -> dict[uuid.UUID, dict[str, Any]]:
    rows = plane.as_operator("GET", f"/api/v1/rollouts/{rollout_id}/targets").json()
    return {uuid.UUID(t["workspace_id"]): t for t in rows}


def deployment(kube: KubeClient, workspace_id: uuid.UUID) -> dict[str, Any]:
    (found,) = kube.list_by_labels(f"canopy/workspace={workspace_id}", [("apps/v1", "Deployment")])
    return dict(found)


def image_of(kube: KubeClient, workspace_id: uuid.UUID) -> str:
    return str(deployment(kube, workspace_id)["spec"]["template"]["spec"]["containers"][0]["image"])


def served_release(public: httpx.Client, url: str) -> str | None:
    try:
        response = public.get(f"{url}{PING}")
    except httpx.HTTPError:
        return None
    return str(response.json().get("CanopyRelease")) if response.status_code == 200 else None


def use(public: httpx.Client, urls: list[str]) -> None:
    """Clients at work: a few API requests to each workspace (unauthenticated: a 401 is a correct answer)."""
    for url in urls:
        for _ in range(5):
            with contextlib.suppress(httpx.HTTPError):
                public.get(f"{url}/api/v4/users/me")


def test_a_good_release_rolls_over_the_workspaces_and_each_serves_it_at_its_public_url(
    plane: Plane, fleet: list[uuid.UUID], kube: KubeClient, public: httpx.Client
) -> None:
    publish(plane, NEXT_RELEASE, NEXT_IMAGE)
    plan = {"canaries": 1, "canary_soak_seconds": 3, "soak_seconds": 1, "first_wave": 1, "upgrade_timeout_seconds": 240}
    rollout_id = start(plane, NEXT_RELEASE, fleet, **plan)
    wait_until(
        lambda: f"rollout completed: {rollout(plane, rollout_id)}",
        lambda: rollout(plane, rollout_id)["state"] == "completed",
        timeout=300,
    )
    done = rollout(plane, rollout_id)
    assert [w["size"] for w in done["waves"]] == [1, 1, 1]
    assert all(t["state"] == "succeeded" and t["upgrades"] == 1 for t in targets(plane, rollout_id).values())
    for ws_id in fleet:
        row = plane.row(ws_id)
        assert (row.desired_release, row.observed_release) == (NEXT_RELEASE, NEXT_RELEASE)
        assert served_release(public, str(row.endpoint_url)) == NEXT_RELEASE
        assert image_of(kube, ws_id) == NEXT_IMAGE


def test_a_release_failing_its_error_rate_gate_pauses_at_the_canary_which_returns_alone(
    plane: Plane, fleet: list[uuid.UUID], kube: KubeClient, public: httpx.Client
) -> None:
    publish(plane, FAULTY_RELEASE, FAULTY_IMAGE)
    before = {ws_id: (plane.row(ws_id).desired_release, deployment(kube, ws_id)) for ws_id in fleet}
    urls = [str(plane.row(ws_id).endpoint_url) for ws_id in fleet]
    plan = {"canaries": 1, "canary_soak_seconds": 60, "upgrade_timeout_seconds": 240, "max_error_rate": 0.02}
    rollout_id = start(plane, FAULTY_RELEASE, fleet, **plan)

    def paused() -> bool:
        use(public, urls)
        return rollout(plane, rollout_id)["state"] == "paused"

    wait_until(lambda: f"the rollout paused: {rollout(plane, rollout_id)}", paused, timeout=300)
    paused_rollout = rollout(plane, rollout_id)
    assert "canary" in paused_rollout["reason"] and "budget" in paused_rollout["reason"]
    by_workspace = targets(plane, rollout_id)
    (canary,) = [ws_id for ws_id, t in by_workspace.items() if t["wave"] == 0]
    assert "error rate" in str(by_workspace[canary]["reason"])
    previous = before[canary][0]

    def canary_back() -> bool:
        row = plane.row(canary)
        state = targets(plane, rollout_id)[canary]["state"]
        return state == "rolled_back" and row.observed_release == previous == served_release(
            public, urls[fleet.index(canary)]
        )

    wait_until(lambda: f"the canary back on {previous}: {targets(plane, rollout_id)[canary]}", canary_back, timeout=300)
    assert image_of(kube, canary) == before[canary][1]["spec"]["template"]["spec"]["containers"][0]["image"]
    for ws_id in fleet:
        if ws_id == canary:
            continue
        assert by_workspace[ws_id]["state"] == "pending" and by_workspace[ws_id]["upgrades"] == 0
        assert plane.row(ws_id).desired_release == before[ws_id][0]
        now = deployment(kube, ws_id)
        assert now["metadata"]["generation"] == before[ws_id][1]["metadata"]["generation"]
    audit = plane.as_operator("GET", "/api/v1/audit", params={"action": "rollout.pause"}).json()["items"]
    assert any(e["target_id"] == rollout_id for e in audit)
    aborted = plane.as_operator("POST", f"/api/v1/rollouts/{rollout_id}/abort", json={"reason": "bad release"})
    assert aborted.status_code == 200 and aborted.json()["state"] == "aborted"
