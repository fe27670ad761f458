"""pytest fixtures for the real Kubernetes test cluster. Import them into a conftest.py::

    from tests.harness.fixtures import kube_api_client, kube_cluster, kube_namespace  # noqa: F401

``kube_cluster`` (session): a started TestCluster, built first if the binaries are not cached (a cold build
takes 5-11 minutes; ``./dev test`` builds before pytest so the fixture does not have to).
``kube_process_cluster`` (session, only started where a test asks for it): a second TestCluster whose kubelet runs
Pods of :data:`WORKSPACE_SERVER_IMAGE` as real workspace server processes (process mode) pointed at the session's
moto server.
``kube_api_client`` (session): an ApiClient for the admin user. ``kube_namespace`` (function): a fresh
namespace name, created before (with its default service account's token, so Pods can be created
at once) and deleted (without waiting) after the test.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest

from tests.harness.kubernetes import ClusterError, TestCluster, binaries_present, build_binaries, default_bin_dir
from tests.harness.moto import MotoServer

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKSPACE_SERVER_IMAGE = "canopy-test/workspace-server:process"  # run as `python -m workspace_server` (process mode)
NEXT_RELEASE, NEXT_IMAGE = "0.2.0", "canopy-test/workspace-server:0.2.0"  # the same server reporting 0.2.0
FAULTY_RELEASE, FAULTY_IMAGE = "0.2.1", "canopy-test/workspace-server:0.2.1"  # 0.2.1, failing 1 API request in 2


def workspace_server_images(moto: MotoServer) -> dict[str, dict[str, Any]]:
    """The process-image map running this checkout's workspace server on moto: as itself
    (:data:`WORKSPACE_SERVER_IMAGE`), as release :data:`NEXT_RELEASE`, and as the bad release
    :data:`FAULTY_RELEASE` (``tests/harness/server_variant.py``)."""
    env = moto.client_env() | {"PYTHONPATH": str(REPO_ROOT)}
    variant = [sys.executable, "-m", "tests.harness.server_variant", "--version"]
    return {
        WORKSPACE_SERVER_IMAGE: {"argv": [sys.executable, "-m", "workspace_server"], "env": env},
        NEXT_IMAGE: {"argv": [*variant, NEXT_RELEASE], "env": env},
        FAULTY_IMAGE: {"argv": [*variant, FAULTY_RELEASE, "--fail-every", "2"], "env": env},
    }


@pytest.fixture(scope="session")
def kube_cluster() -> Iterator[TestCluster]:
    """The session's Kubernetes cluster (etcd, kube-apiserver, kube-controller-manager, test kubelet)."""
    yield from _cluster({})


@pytest.fixture(scope="session")
def kube_process_cluster(moto_server: MotoServer) -> Iterator[TestCluster]:
    """A cluster of its own whose kubelet runs :data:`WORKSPACE_SERVER_IMAGE` Pods as workspace server processes."""
    yield from _cluster(workspace_server_images(moto_server))


def _cluster(process_images: dict[str, dict[str, Any]]) -> Iterator[TestCluster]:
    bin_dir = default_bin_dir()
    if not binaries_present(bin_dir):
        try:
            bin_dir = build_binaries()
        except ClusterError as e:
            pytest.fail(
                f"cannot build the Kubernetes test binaries (tests/harness/build_kubernetes.sh):\n{e}", pytrace=False
            )
    cluster = TestCluster(bin_dir, process_images=process_images)
    try:
        cluster.start()
    except ClusterError as e:
        pytest.fail(f"cannot start the Kubernetes test cluster:\n{e}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def kube_api_client(kube_cluster: TestCluster) -> Iterator[kubernetes.client.ApiClient]:
    """An ApiClient for the cluster's admin user (group system:masters)."""
    client = kube_cluster.api_client()
    try:
        yield client
    finally:
        client.close()  # type: ignore[no-untyped-call]


def _has_token(core: kubernetes.client.CoreV1Api, namespace: str) -> bool:
    try:
        return bool(core.read_namespaced_service_account("default", namespace).secrets)
    except kubernetes.client.ApiException as e:
        if e.status == 404:
            return False
        raise


@pytest.fixture
def kube_namespace(kube_api_client: kubernetes.client.ApiClient) -> Iterator[str]:
    """A new, empty namespace for one test; deleted afterwards (not waited for)."""
    core = kubernetes.client.CoreV1Api(kube_api_client)
    name = f"t-{uuid.uuid4().hex[:10]}"
    core.create_namespace(kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=name)))
    # On 1.20 the ServiceAccount admission plugin rejects Pods (500, "No API token found") until the token
    # controller has given the namespace's default service account its token secret.
    deadline = time.monotonic() + 30
    while not _has_token(core, name):
        if time.monotonic() > deadline:
            pytest.fail(f"namespace {name}: default service account got no token in 30s", pytrace=False)
        time.sleep(0.05)
    yield name
    try:
        core.delete_namespace(name)
    except kubernetes.client.ApiException as e:
        if e.status != 404:
            raise
