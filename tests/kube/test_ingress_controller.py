"""A silo's ingress controller on the real test cluster: applied once (a second ensure creates nothing), the load
balancer's address waited for, a clear error when no address comes, and a teardown that waits for the load balancer
to let go (the stand-in cloud's cleanup finalizer) and leaves nothing."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from control_plane.kube.client import KubeClient
from control_plane.kube.eks import ClusterResolver
from control_plane.kube.ingress_controller import CONTROLLER_KINDS, IngressControllerInstaller, silo_controller
from control_plane.providers.aws.common import Aws, SiloConfig, Waits
from control_plane.providers.aws.fleet import KubeWorkload, Target
from control_plane.providers.base import ProviderError
from infra.ingress import CONTROLLER_NAME, LB_CLEANUP_FINALIZER, load_balancer_problems
from tests.harness.cloud_controller import StandInCloudController
from tests.harness.kubernetes import TestCluster
from tests.kube.factories import deploy_settings, server_config, workspace

pytestmark = pytest.mark.slow

CERTIFICATE = "arn:aws:acm:eu-west-1:123456789012:certificate/0b5e9f64-5b0f-4b8e-9d1a-2f0d6c1a7e11"


@pytest.fixture
def kube(kube_cluster: TestCluster) -> KubeClient:
    return KubeClient.from_kubeconfig(kube_cluster.kubeconfig)


def test_installed_once_addressed_and_torn_down_after_the_load_balancer(
    kube_cluster: TestCluster, kube: KubeClient
) -> None:
    ws = workspace("enterprise", slug=f"t{uuid.uuid4().hex[:8]}")
    controller = silo_controller(ws, f"ws-{ws.id.hex[:12]}", CERTIFICATE)
    installer = IngressControllerInstaller(kube, timeout=30)
    with StandInCloudController(kube_cluster.kubeconfig, "eu-west-1", service_delay=1.0):
        address, created = installer.ensure(controller)
        assert address.startswith(f"{CONTROLLER_NAME}-") and address.endswith(".elb.eu-west-1.amazonaws.com")
        assert len(created) == len(CONTROLLER_KINDS)
        assert installer.ensure(controller) == (address, [])
        assert Counter(o["kind"] for o in installer.objects(ws)) == Counter(kind for _, kind in CONTROLLER_KINDS)
        service = kube.get("v1", "Service", CONTROLLER_NAME, controller.namespace)
        assert service is not None and load_balancer_problems(service) == []
        assert LB_CLEANUP_FINALIZER in service["metadata"]["finalizers"]

        installer.teardown(ws, controller)
        assert installer.objects(ws) == []
        installer.teardown(ws, controller)  # idempotent


def test_no_address_is_a_clear_error(kube: KubeClient) -> None:
    """Without a cloud to make the load balancer, the ensure says what it waited for."""
    ws = workspace("enterprise", slug=f"t{uuid.uuid4().hex[:8]}")
    controller = silo_controller(ws, f"ws-{ws.id.hex[:12]}", CERTIFICATE)
    installer = IngressControllerInstaller(kube, timeout=15)
    try:
        with pytest.raises(
            ProviderError, match=rf"waiting for the load balancer address of service {controller.namespace}"
        ):
            installer.ensure(controller)
    finally:
        for obj in installer.objects(ws):
            kube.delete(obj)


def test_silo_compute_says_what_it_waits_for_when_no_controller_publishes(
    kube_cluster: TestCluster, kube: KubeClient
) -> None:
    """The workspace server rolls out, but no controller serves its Ingress's class: compute's error names the wait."""
    ws = workspace("enterprise", slug=f"t{uuid.uuid4().hex[:8]}")
    settings = deploy_settings(rollout_timeout=15.0)
    silo = SiloConfig("test", "eu-west-1", (), None, None, "silo.test", 1, Waits(1.0, 0.1))
    workload = KubeWorkload(
        settings,
        lambda _: Target("canopy-test-silo", "silo.test", "canopy-nobody"),
        ClusterResolver({"*": str(kube_cluster.kubeconfig)}),
        silo=silo,
        aws=Aws(),
        probe_http=False,
    )
    namespace = f"ws-{ws.id.hex[:12]}"
    try:
        with pytest.raises(ProviderError, match=f"the ingress controller to publish .* on ingress {namespace}/"):
            workload.ensure(ws, server_config())
        ingress = kube.get("networking.k8s.io/v1", "Ingress", "workspace-server", namespace)
        assert ingress is not None and ingress["spec"]["ingressClassName"] == "canopy-nobody"
    finally:
        kube.delete({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
