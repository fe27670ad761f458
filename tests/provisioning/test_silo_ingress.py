"""A silo that serves: a worker provisions an enterprise workspace with the aws provider (moto + the test cluster);
its cluster gets Canopy's ingress-nginx behind an NLB ending TLS with the workspace's ACM certificate (ISSUED, its
validation record in the silo zone), compute waits until the controller publishes the load balancer's address (the
stand-in cloud publishes it only after a delay), the workspace's name points there; deletion removes the load
balancer, then the certificate, and leaves nothing.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator

import boto3
import pytest

from control_plane.kube.client import KubeClient
from control_plane.kube.ingress_controller import CONTROLLER_KINDS, LABEL_FOR
from control_plane.providers.aws.common import Aws
from control_plane.providers.aws.sweep import LeakSweep
from control_plane.reconciler.queue import Cause, defer_reconcile
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Tier
from infra.conventions import workspace_names
from infra.ingress import CONTROLLER_IMAGE, load_balancer_problems
from tests.aws.conftest import SILO_DOMAIN, CloudCell
from tests.harness.cloud_controller import StandInCloudController
from tests.harness.kubernetes import TestCluster
from tests.harness.moto import REGION
from tests.provisioning.conftest import aws_plane, kube, new_workspace  # noqa: F401
from tests.reconciler.conftest import Plane

pytestmark = pytest.mark.slow

DELAY = 2.0  # seconds the stand-in cloud takes to give the load balancer and then the Ingress their address
CONTROLLER_OBJECTS = Counter(kind for _, kind in CONTROLLER_KINDS)
LB_HOSTNAME = re.compile(rf"^ingress-nginx-controller-[0-9a-f]{{16}}\.elb\.{REGION}\.amazonaws\.com$")


@pytest.fixture(scope="module")
def cloud(kube_cluster: TestCluster) -> StandInCloudController:
    """The stand-in cloud of this module: slow to publish addresses."""
    return StandInCloudController(kube_cluster.kubeconfig, REGION, service_delay=DELAY, ingress_delay=DELAY)


@pytest.fixture(scope="module")
def plane(
    create_database: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
    kube_cluster: TestCluster,
    aws_cell: CloudCell,
    cloud: StandInCloudController,
) -> Iterator[Plane]:
    with aws_plane(create_database, tmp_path_factory, kube_cluster, aws_cell, "silo_ingress", cloud=cloud) as p:
        yield p


def _controller_objects(kube: KubeClient, ws_id: uuid.UUID) -> Counter[str]:  # noqa: F811
    return Counter(obj["kind"] for obj in kube.list_by_labels(f"{LABEL_FOR}={ws_id}", CONTROLLER_KINDS))


def test_a_silo_serves_through_its_own_ingress_controller_tls_and_name(
    plane: Plane,
    kube: KubeClient,  # noqa: F811
    aws_cell: CloudCell,
    cloud: StandInCloudController,
) -> None:
    ws_id = new_workspace(plane, f"edge{uuid.uuid4().hex[:6]}", Tier.enterprise)
    plane.start_worker()
    started = time.monotonic()
    defer_reconcile(ws_id, Cause.signup)
    ws = plane.wait_state(ws_id, Lifecycle.active, timeout=120)
    print(f"silo with {DELAY:g} s address delays provisioned in {time.monotonic() - started:.1f} s")
    assert ws.last_error is None and all(c["status"] == "True" for c in ws.conditions), ws.conditions
    outputs, host = ws.outputs, f"{ws.slug}.{SILO_DOMAIN}"

    # The controller, installed by Canopy on the silo's cluster.
    assert _controller_objects(kube, ws_id) == CONTROLLER_OBJECTS
    ns = outputs["ingress_namespace"]
    controller = kube.get("apps/v1", "Deployment", "ingress-nginx-controller", ns)
    assert controller is not None
    container = controller["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == CONTROLLER_IMAGE and ":v1.12.0@sha256:" in CONTROLLER_IMAGE
    assert f"--ingress-class={outputs['ingress_class']}" in container["args"]
    service = kube.get("v1", "Service", "ingress-nginx-controller", ns)
    assert service is not None and service["spec"]["type"] == "LoadBalancer"
    annotations = service["metadata"]["annotations"]
    lb = "service.beta.kubernetes.io/aws-load-balancer-"
    assert annotations[lb + "type"] == "nlb" and annotations[lb + "ssl-ports"] == "https"
    assert annotations[lb + "ssl-cert"] == outputs["certificate_arn"]
    assert {p["port"] for p in service["spec"]["ports"]} == {80, 443} and load_balancer_problems(service) == []

    # The certificate: ISSUED for the workspace's name, validated through its record in the silo zone.
    acm = boto3.client("acm")
    certificate = acm.describe_certificate(CertificateArn=outputs["certificate_arn"])["Certificate"]
    assert certificate["Status"] == "ISSUED" and certificate["DomainName"] == host
    wanted = certificate["DomainValidationOptions"][0]["ResourceRecord"]
    assert _record(aws_cell.silo_zone_id, wanted["Name"].rstrip(".")) == wanted["Value"]

    # The address: the load balancer's, published on the workspace's Ingress after the delay, and the name's target.
    address = outputs["load_balancer_hostname"]
    assert LB_HOSTNAME.match(address), address
    assert outputs["ingress_hostname"] == address, "compute waited for the published address"
    names = workspace_names("test", ws_id)
    ingress = kube.get("networking.k8s.io/v1", "Ingress", "workspace-server", names.namespace)
    assert ingress is not None and ingress["spec"]["ingressClassName"] == outputs["ingress_class"]
    assert ingress["status"]["loadBalancer"]["ingress"] == [{"hostname": address}]
    assert (names.namespace, "workspace-server") in cloud.published
    assert _record(aws_cell.silo_zone_id, host) == address

    started = time.monotonic()
    plane.purge(ws_id)
    plane.wait_state(ws_id, Lifecycle.deleted, timeout=120)
    print(f"deleted in {time.monotonic() - started:.1f} s")
    records = [(aws_cell.silo_zone_id, host), (aws_cell.silo_zone_id, outputs["certificate_validation_name"])]
    assert LeakSweep(Aws(), REGION).leftovers_for(ws_id, records) == []
    assert _controller_objects(kube, ws_id) == Counter()
    assert kube.get("v1", "Namespace", ns) is None
    with pytest.raises(acm.exceptions.ResourceNotFoundException):
        acm.describe_certificate(CertificateArn=outputs["certificate_arn"])


def _record(zone_id: str, name: str) -> str | None:
    """The value of the CNAME ``name`` in ``zone_id``, if any."""
    records = boto3.client("route53").list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    found = [
        r["ResourceRecords"][0]["Value"] for r in records if r["Name"].rstrip(".") == name and r["Type"] == "CNAME"
    ]
    return str(found[0]) if found else None
