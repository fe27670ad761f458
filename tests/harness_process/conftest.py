"""A control plane provisioning onto a cluster whose kubelet runs workspace servers as processes (process mode),
reached at their public URLs through the stand-in ingress: one Professional workspace per module, Available only
once the control plane pinged it there."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from control_plane.kube.client import KubeClient
from control_plane.reconciler.queue import Cause, defer_reconcile
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Tier
from tests.aws.conftest import CloudCell, aws_cell  # noqa: F401
from tests.harness.fixtures import WORKSPACE_SERVER_IMAGE, kube_process_cluster  # noqa: F401
from tests.harness.ingress import StandInIngress
from tests.harness.kubernetes import TestCluster
from tests.harness.moto import moto_server  # noqa: F401
from tests.provisioning.conftest import aws_plane, new_workspace
from tests.reconciler.conftest import Plane


@pytest.fixture(scope="module")
def ingress(kube_process_cluster: TestCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandInIngress]:  # noqa: F811
    """The stand-in ingress controller of the process cluster."""
    with StandInIngress(kube_process_cluster.kubeconfig, tmp_path_factory.mktemp("ingress")) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def plane(
    create_database: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
    kube_process_cluster: TestCluster,  # noqa: F811
    aws_cell: CloudCell,  # noqa: F811
    ingress: StandInIngress,
) -> Iterator[Plane]:
    """The aws plane with the workspace server image in process mode, pinging workspaces through the ingress."""
    env = {"CANOPY_AWS_PROBE_HTTP": "true", "CANOPY_KUBE_WORKSPACE_IMAGE": WORKSPACE_SERVER_IMAGE, **ingress.env()}
    with aws_plane(create_database, tmp_path_factory, kube_process_cluster, aws_cell, "process", None, **env) as p:
        yield p


@pytest.fixture(scope="module")
def kube(kube_process_cluster: TestCluster) -> Iterator[KubeClient]:  # noqa: F811
    """An admin client of the process cluster."""
    client = KubeClient.from_kubeconfig(kube_process_cluster.kubeconfig)
    yield client
    client.close()


@pytest.fixture(scope="module")
def workspace(plane: Plane) -> Any:
    """One Professional workspace, provisioned until trialing (Available: it answered at its public URL)."""
    ws_id = new_workspace(plane, f"proc{uuid.uuid4().hex[:6]}", Tier.professional)
    plane.start_worker()
    defer_reconcile(ws_id, Cause.signup)
    return plane.wait_state(ws_id, Lifecycle.trialing, timeout=120)
