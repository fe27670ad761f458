"""Rollouts driven through the API and real workers over 200 workspaces in two cells on the Kubernetes harness: a
good release in canary and growing waves within the per-cell cap, a broken image stopped at its canary, a worker
SIGKILLed mid-wave, an operator's rollback and its schema refusal."""

from __future__ import annotations

import os
import signal
import uuid
from collections import defaultdict
from datetime import datetime
from typing import Any

import pytest

from control_plane.core import db as core_db
from control_plane.core.settings import get_settings
from control_plane.kube.client import KubeClient
from control_plane.releases.models import Release
from control_plane.rollouts.planning import wave_sizes
from control_plane.rollouts.schemas import Plan
from tests.reconciler.conftest import Plane
from tests.rollouts.conftest import (
    CELL_B,
    ROLLOUT_TIMEOUT_SECONDS,
    Fleet,
    deployment,
    image,
    pod_images,
    revision,
    start_worker,
)
from tests.waiting import wait_until
from workspace_server.release import SCHEMA_REVISION

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # the first test also provisions the fleet

FAST = {"canary_soak_seconds": 0, "soak_seconds": 0, "upgrade_timeout_seconds": 120}


def publish(fleet: Fleet, *, broken: bool = False, schema_min: int = SCHEMA_REVISION, **extra: Any) -> str:
    """A new candidate release (its own version and image) through the API; returns its version."""
    tag = uuid.uuid4().hex[:8]
    version = f"2.0.0-t{tag}"
    body = {
        "version": version,
        "image": f"ghcr.io/canopy/workspace-server:{'broken-' if broken else ''}{tag}",
        "schema_min": schema_min,
        **extra,
    }
    answer = fleet.plane.api.post("/api/v1/releases", json=body, headers=fleet.operator)
    assert answer.status_code == 201, answer.text
    return version


def start(fleet: Fleet, version: str, workspaces: list[uuid.UUID], **plan: Any) -> str:
    """Start a rollout of ``version`` over ``workspaces`` through the API; returns its id."""
    body = {"release": version, "selector": {"workspaces": [str(w) for w in workspaces]}, "plan": plan}
    answer = fleet.plane.api.post("/api/v1/rollouts", json=body, headers=fleet.operator)
    assert answer.status_code == 201, answer.text
    assert answer.json()["targets"] == len(workspaces)
    return str(answer.json()["id"])


def rollout(fleet: Fleet, rollout_id: str) -> dict[str, Any]:
    answer = fleet.plane.api.get(f"/api/v1/rollouts/{rollout_id}", headers=fleet.operator)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def targets(fleet: Fleet, rollout_id: str) -> list[dict[str, Any]]:
    answer = fleet.plane.api.get(f"/api/v1/rollouts/{rollout_id}/targets", headers=fleet.operator)
    assert answer.status_code == 200, answer.text
    return list(answer.json())


def wait_rollout(fleet: Fleet, rollout_id: str, state: str, timeout: float) -> dict[str, Any]:
    """Until the rollout is in ``state`` (its progress and the workers' logs in the failure)."""
    seen: dict[str, Any] = {}

    def there() -> bool:
        seen.update(rollout(fleet, rollout_id))
        return bool(seen["state"] == state)

    wait_until(
        lambda: f"rollout {state}: {seen.get('state')} {seen.get('waves')}\n{fleet.plane.worker_logs()}",
        there,
        timeout=timeout,
    )
    return seen


def release_image(version: str) -> str:
    """The image of a release in the catalogue (the bundled one included)."""
    with core_db.session_scope() as session:
        release = session.query(Release).filter_by(version=version).one_or_none()
        return release.image if release is not None else get_settings().kube_workspace_image


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def most_in_flight(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Per cell, the most targets whose [started_at, finished_at) intervals overlap at any instant."""
    events: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
    for row in rows:
        events[row["cell"]] += [(at(row["started_at"]), 1), (at(row["finished_at"]), -1)]
    peaks = {}
    for cell, changes in events.items():
        level = peak = 0
        for _, change in sorted(changes):  # an end sorts before a start at the same instant (half-open)
            level += change
            peak = max(peak, level)
        peaks[cell] = peak
    return peaks


def test_a_good_release_rolls_over_200_workspaces_in_waves_within_the_per_cell_cap(
    fleet: Fleet, workers: list[Any], kube: KubeClient
) -> None:
    plane = fleet.plane
    before = {ws_id: revision(deployment(kube, plane, ws_id)) for ws_id in fleet.ids}
    version = publish(fleet)
    plan = {**FAST, "canaries": 2, "first_wave": 10, "growth": 2.0, "max_per_cell": 10}
    rollout_id = start(fleet, version, fleet.ids, **plan)

    done = wait_rollout(fleet, rollout_id, "completed", timeout=600)

    rows = targets(fleet, rollout_id)
    assert {(r["state"], r["upgrades"]) for r in rows} == {("succeeded", 1)}
    planned = wave_sizes(Plan.model_validate(plan), len(fleet.ids))
    assert planned == [2, 10, 20, 40, 80, 48]
    assert [w["size"] for w in done["waves"]] == planned
    assert [w["states"] for w in done["waves"]] == [{"succeeded": n} for n in planned]
    by_wave: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_wave[row["wave"]].append(row)
    for wave in range(1, len(planned)):
        last_end = max(at(r["finished_at"]) for r in by_wave[wave - 1])
        assert min(at(r["started_at"]) for r in by_wave[wave]) >= last_end, f"wave {wave} began before {wave - 1}"
    assert {r["cell"] for r in rows} == {"cell-a", CELL_B}
    assert most_in_flight(rows) == {"cell-a": 10, CELL_B: 10}, "the cap held, and bound"

    new_image = release_image(version)
    for ws_id in fleet.ids:
        assert plane.row(ws_id).observed_release == version
        found = deployment(kube, plane, ws_id)
        assert image(found) == new_image and revision(found) == before[ws_id] + 1, "rolled once"
        assert pod_images(kube, plane, ws_id) == {new_image}


def test_a_broken_release_stops_at_its_canary_which_returns_to_its_previous_release(
    fleet: Fleet, workers: list[Any], kube: KubeClient
) -> None:
    plane = fleet.plane
    chosen = fleet.ids[:6]
    previous = {ws_id: plane.row(ws_id).desired_release for ws_id in chosen}
    deployments = {ws_id: deployment(kube, plane, ws_id) for ws_id in chosen}
    version = publish(fleet, broken=True)
    # The deadline outlasts a reconcile waiting on the broken Deployment's rollout: the way back waits for it.
    plan = {**FAST, "canaries": 1, "first_wave": 5, "upgrade_timeout_seconds": ROLLOUT_TIMEOUT_SECONDS + 10}
    rollout_id = start(fleet, version, chosen, **plan)

    paused = wait_rollout(fleet, rollout_id, "paused", timeout=120)
    assert "canary" in paused["reason"], paused["reason"]
    wait_until(
        lambda: f"the canary rolled back: {targets(fleet, rollout_id)}\n{plane.worker_logs()}",
        lambda: targets(fleet, rollout_id)[0]["state"] == "rolled_back",
        timeout=120,
    )
    canary, *others = targets(fleet, rollout_id)
    assert canary["wave"] == 0 and f"not serving {version}" in canary["reason"], canary
    ws_id = uuid.UUID(canary["workspace_id"])
    ws = plane.row(ws_id)
    assert (ws.desired_release, ws.observed_release) == (previous[ws_id], previous[ws_id])
    old_image = image(deployments[ws_id])
    found = deployment(kube, plane, ws_id)
    assert image(found) == old_image
    wait_until("the canary's Pods on the old image alone", lambda: pod_images(kube, plane, ws_id) == {old_image})

    assert {(t["state"], t["upgrades"]) for t in others} == {("pending", 0)}
    for target in others:
        other = uuid.UUID(target["workspace_id"])
        assert plane.row(other).desired_release == previous[other]
        assert (
            deployment(kube, plane, other)["metadata"]["generation"] == (deployments[other]["metadata"]["generation"])
        ), "untouched"

    aborted = plane.api.post(f"/api/v1/rollouts/{rollout_id}/abort", json={"reason": "bad"}, headers=fleet.operator)
    assert aborted.status_code == 200 and aborted.json()["state"] == "aborted", aborted.text
    assert {t["state"] for t in targets(fleet, rollout_id)[1:]} == {"skipped"}, "free for later rollouts"


def _driving_worker(plane: Plane) -> int | None:
    """The worker running a pass of the rollout engine now (an ``advance_rollout`` job it is doing)."""
    with plane.admin() as conn:
        row = conn.execute(
            "SELECT worker_id FROM procrastinate_jobs WHERE task_name = 'advance_rollout'"
            " AND status = 'doing' AND worker_id IS NOT NULL LIMIT 1"
        ).fetchone()
    return int(row[0]) if row else None


def test_a_worker_killed_mid_wave_leaves_the_rollout_to_the_other_and_each_workspace_upgraded_once(
    fleet: Fleet, kube: KubeClient
) -> None:
    plane = fleet.plane
    chosen = fleet.ids[6:46]
    before = {ws_id: revision(deployment(kube, plane, ws_id)) for ws_id in chosen}
    processes = dict(start_worker(plane) for _ in range(2))
    try:
        version = publish(fleet)
        plan = {**FAST, "canaries": 1, "first_wave": 39, "max_per_cell": 8, "soak_seconds": 1}
        rollout_id = start(fleet, version, chosen, **plan)

        def mid_wave() -> bool:
            states = {t["state"] for t in targets(fleet, rollout_id) if t["wave"] == 1}
            return "upgrading" in states and "pending" in states

        wait_until("upgrades in flight in the wave", mid_wave, timeout=120)
        driving: list[int] = []

        def in_a_pass() -> bool:
            driving.append(_driving_worker(plane) or 0)
            return driving[-1] in processes

        wait_until("a worker in a pass", in_a_pass)
        os.kill(processes[driving[-1]].pid, signal.SIGKILL)
        processes[driving[-1]].wait(10)

        wait_rollout(fleet, rollout_id, "completed", timeout=300)
    finally:
        plane.stop_workers()
    rows = targets(fleet, rollout_id)
    assert {(r["state"], r["upgrades"]) for r in rows} == {("succeeded", 1)}
    new_image = release_image(version)
    for ws_id in chosen:
        found = deployment(kube, plane, ws_id)
        assert image(found) == new_image and revision(found) == before[ws_id] + 1, "one new ReplicaSet"
        assert plane.row(ws_id).observed_release == version


def test_an_operator_rolls_back_a_completed_rollout(fleet: Fleet, workers: list[Any], kube: KubeClient) -> None:
    plane = fleet.plane
    chosen = fleet.ids[46:49]
    previous = {ws_id: plane.row(ws_id).desired_release for ws_id in chosen}
    old_images = {ws_id: image(deployment(kube, plane, ws_id)) for ws_id in chosen}
    version = publish(fleet)
    rollout_id = start(fleet, version, chosen, **FAST, canaries=1, first_wave=2)
    wait_rollout(fleet, rollout_id, "completed", timeout=120)

    answer = plane.api.post(f"/api/v1/rollouts/{rollout_id}/rollback", json={"reason": "test"}, headers=fleet.operator)
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "rolled_back"
    wait_until(
        lambda: f"every target rolled back: {targets(fleet, rollout_id)}\n{plane.worker_logs()}",
        lambda: {t["state"] for t in targets(fleet, rollout_id)} == {"rolled_back"},
        timeout=120,
    )
    for ws_id in chosen:
        ws = plane.row(ws_id)
        assert (ws.desired_release, ws.observed_release) == (previous[ws_id], previous[ws_id])
        assert image(deployment(kube, plane, ws_id)) == old_images[ws_id]
        assert pod_images(kube, plane, ws_id) == {old_images[ws_id]}


def test_a_rollback_to_a_release_that_cannot_run_on_the_new_schema_is_refused_and_changes_nothing(
    fleet: Fleet, workers: list[Any], kube: KubeClient
) -> None:
    plane = fleet.plane
    chosen = fleet.ids[49:51]
    base = max(SCHEMA_REVISION, *(plane.row(w).schema_revision or 0 for w in chosen))
    narrow = publish(fleet, schema_min=base, schema_max=base)
    first = start(fleet, narrow, chosen, **FAST, canaries=1, first_wave=1)
    wait_rollout(fleet, first, "completed", timeout=120)
    expanding = publish(fleet, schema_min=base + 1)
    second = start(fleet, expanding, chosen, **FAST, canaries=1, first_wave=1)
    wait_rollout(fleet, second, "completed", timeout=120)
    assert {plane.row(w).schema_revision for w in chosen} == {base + 1}, "read back from the release that runs"
    revisions = {ws_id: revision(deployment(kube, plane, ws_id)) for ws_id in chosen}

    answer = plane.api.post(f"/api/v1/rollouts/{second}/rollback", json={"reason": "test"}, headers=fleet.operator)

    assert answer.status_code == 409, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["type"].endswith("rollback-refused"), problem
    assert {r["workspace_id"] for r in problem["refusals"]} == {str(w) for w in chosen}
    assert all(f"release {narrow} runs on schema revisions" in r["reason"] for r in problem["refusals"])
    assert rollout(fleet, second)["state"] == "completed"
    assert {t["state"] for t in targets(fleet, second)} == {"succeeded"}
    for ws_id in chosen:
        assert plane.row(ws_id).desired_release == expanding
        assert revision(deployment(kube, plane, ws_id)) == revisions[ws_id]
