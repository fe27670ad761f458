"""Rollouts on the Kubernetes harness: a control plane with the aws provider (moto, the machine's PostgreSQL, the
test cluster, whose kubelet reports Pods Running with their spec's image and never readies an image containing
``:broken``), two cells, and 200 Professional workspaces provisioned by real workers as signups are.

Each test starts its own workers (stopped when it ends), publishes its own releases and rolls them through the API
over the workspaces it names, and asserts against what it read before it started, so the tests run in any order.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from control_plane.core.authz import Role
from control_plane.kube.client import KubeClient
from control_plane.kube.render import APP_NAME
from control_plane.reconciler import records
from control_plane.reconciler.queue import Cause, defer_reconcile
from control_plane.workspaces.models import Tier
from tests.aws.conftest import CloudCell, aws_cell, make_cloud_cell  # noqa: F401
from tests.harness.fixtures import kube_cluster  # noqa: F401
from tests.harness.kubernetes import TestCluster
from tests.harness.moto import MotoServer, moto_server  # noqa: F401
from tests.provisioning.conftest import aws_plane, kube, new_workspace, register_cell  # noqa: F401
from tests.reconciler.conftest import Plane
from tests.waiting import wait_until

FLEET = 200
CELL_B = "cell-b"
CAPACITY = FLEET // 2 + 10  # per cell: placement (most room first) spreads the fleet evenly over the two
ROLLOUT_TIMEOUT_SECONDS = 20  # how long a reconcile waits for a Deployment's rollout (a broken image never ends it)
REVISION = "deployment.kubernetes.io/revision"


@dataclass(frozen=True)
class Fleet:
    """The module's plane, its operator's headers and its 200 converged workspaces (in creation order)."""

    plane: Plane
    operator: dict[str, str]
    ids: list[uuid.UUID]


@pytest.fixture(scope="session")
def cell_b(moto_server: MotoServer, admin_url: str, aws_cell: CloudCell) -> CloudCell:  # noqa: F811
    """A second cell in the session's moto account (the first is ``aws_cell``)."""
    return make_cloud_cell(admin_url, CELL_B)


@pytest.fixture(scope="module")
def rollout_plane(
    create_database: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
    kube_cluster: TestCluster,  # noqa: F811
    aws_cell: CloudCell,  # noqa: F811
    cell_b: CloudCell,
) -> Iterator[Plane]:
    """An aws plane over two cells, rollouts advanced every second, and re-verification so slow (a period of
    decades) that none falls due during the module: the workers run the rollouts' reconciles only."""
    env = {
        "CANOPY_ROLLOUT_SECONDS": "1",
        "CANOPY_KUBE_ROLLOUT_TIMEOUT_SECONDS": str(ROLLOUT_TIMEOUT_SECONDS),
        "CANOPY_REVERIFY_SECONDS": str(10**9),
        "CANOPY_DRIFT_SECONDS": "30",
    }
    with aws_plane(create_database, tmp_path_factory, kube_cluster, aws_cell, "rollouts", CAPACITY, **env) as plane:
        register_cell(cell_b, CAPACITY)
        yield plane


@pytest.fixture(scope="module")
def fleet(rollout_plane: Plane, kube: KubeClient) -> Iterator[Fleet]:  # noqa: F811
    """200 Professional workspaces over the two cells, provisioned by two workers; their namespaces are deleted
    afterwards (the test cluster is shared with later modules)."""
    plane = rollout_plane
    tag = uuid.uuid4().hex[:5]
    ids = [new_workspace(plane, f"r{tag}{i:03d}", Tier.professional) for i in range(FLEET)]
    for ws_id in ids:
        defer_reconcile(ws_id, Cause.signup)
    workers = start_workers(plane, 2)
    wait_until(
        lambda: f"{len(records.converged_ids())} of {FLEET} converged\n{plane.worker_logs()}",
        lambda: len(records.converged_ids()) == FLEET,
        timeout=900,
    )
    plane.stop_workers()
    assert all(w.poll() is not None for w in workers)
    yield Fleet(plane, plane.staff_headers(Role.operator), ids)
    for ws_id in ids:
        namespace = plane.row(ws_id).outputs.get("namespace")
        if namespace:
            kube.delete({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})


@pytest.fixture
def workers(fleet: Fleet) -> Iterator[list[Any]]:
    """Two worker processes for this test only."""
    plane = fleet.plane
    yield start_workers(plane, 2)
    plane.stop_workers()


def worker_ids(plane: Plane) -> set[int]:
    """The heartbeat rows of the live workers."""
    with plane.admin() as conn:
        return {row[0] for row in conn.execute("SELECT id FROM procrastinate_workers").fetchall()}


def start_workers(plane: Plane, count: int) -> list[subprocess.Popen[bytes]]:
    """``count`` worker processes at once, returned when each takes jobs (a heartbeat row each); one that exits at
    start fails the test at once with its log."""
    known = worker_ids(plane)
    processes = [plane.start_worker(concurrency=8) for _ in range(count)]

    def up() -> bool:
        assert all(p.poll() is None for p in processes), f"a worker exited at start\n{plane.worker_logs()}"
        return len(worker_ids(plane) - known) >= count

    wait_until("the workers' heartbeats", up, timeout=60)
    return processes


def start_worker(plane: Plane) -> tuple[int, subprocess.Popen[bytes]]:
    """One worker process, once it takes jobs, and its heartbeat row's id (started alone: the new row is its own)."""
    known = worker_ids(plane)
    process = start_workers(plane, 1)[0]
    return (worker_ids(plane) - known).pop(), process


def deployment(kube: KubeClient, plane: Plane, ws_id: uuid.UUID) -> dict[str, Any]:  # noqa: F811
    """The workspace's Deployment on the test cluster."""
    found = kube.get("apps/v1", "Deployment", APP_NAME, str(plane.row(ws_id).outputs["namespace"]))
    assert found is not None
    return found


def revision(found: dict[str, Any]) -> int:
    """How many times the Deployment's Pod template changed (the Deployment controller's count)."""
    return int(found["metadata"].get("annotations", {}).get(REVISION, "0"))


def image(found: dict[str, Any]) -> str:
    """The image the Deployment's Pods are to run."""
    return str(found["spec"]["template"]["spec"]["containers"][0]["image"])


def pod_images(kube: KubeClient, plane: Plane, ws_id: uuid.UUID) -> set[str]:  # noqa: F811
    """The images the workspace's ready, not terminating Pods run, as their status reports them."""
    namespace = str(plane.row(ws_id).outputs["namespace"])
    images = set()
    for pod in kube.list_kind("v1", "Pod", namespace, f"canopy/workspace={ws_id}"):
        status = pod.get("status") or {}
        if pod["metadata"].get("deletionTimestamp") or status.get("phase") != "Running":
            continue
        images |= {c["image"] for c in status.get("containerStatuses") or [] if c.get("ready")}
    return images
