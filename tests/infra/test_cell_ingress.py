"""The cell's shared cluster gets Canopy's ingress-nginx through the cell stack: an NLB ending TLS with a wildcard ACM
certificate validated in the cell's zone, and ``ingress.<domain>`` (where pooled names point) naming that NLB."""

from __future__ import annotations

import copy
from typing import Any

from infra.ingress import CONTROLLER_IMAGE, LB, load_balancer_problems
from infra.policy import ResourceRecord, check_resources
from tests.infra.mocks import CONFIG, DeclaredCell


def _one(cell: DeclaredCell, typ: str, name_part: str = "") -> ResourceRecord:
    [record] = [r for r in cell.of_type(typ) if name_part in r.name]
    return record


def test_the_controller_is_declared_on_the_shared_cluster(declared_cell: DeclaredCell) -> None:
    kinds = {r.type.rsplit(":", 1)[1] for r in declared_cell.records if r.type.startswith("kubernetes:")}
    assert kinds == {
        "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ConfigMap",
        "IngressClass", "Deployment", "Service",
    }  # fmt: skip
    namespace = _one(declared_cell, "kubernetes:core/v1:Namespace")
    assert namespace.inputs["metadata"]["name"] == "ingress-nginx"  # what pooled NetworkPolicies admit
    ingress_class = _one(declared_cell, "kubernetes:networking.k8s.io/v1:IngressClass")
    assert ingress_class.inputs["metadata"]["name"] == "nginx"  # every pooled Ingress's class
    deployment = _one(declared_cell, "kubernetes:apps/v1:Deployment")
    [container] = deployment.inputs["spec"]["template"]["spec"]["containers"]
    assert container["image"] == CONTROLLER_IMAGE and "@sha256:" in CONTROLLER_IMAGE
    assert "--publish-service=$(POD_NAMESPACE)/ingress-nginx-controller" in container["args"]


def test_the_load_balancer_is_an_nlb_ending_tls_with_the_validated_wildcard_certificate(
    declared_cell: DeclaredCell,
) -> None:
    certificate = _one(declared_cell, "aws:acm/certificate:Certificate")
    assert certificate.inputs["domainName"] == f"*.{CONFIG.domain}"
    assert certificate.inputs["validationMethod"] == "DNS"
    validation = _one(declared_cell, "aws:acm/certificateValidation:CertificateValidation")
    assert validation.inputs["certificateArn"] == certificate.id
    record = _one(declared_cell, "aws:route53/record:Record", "validation")
    assert record.inputs["zoneId"] == declared_cell.outputs["zone_id"] and record.inputs["type"] == "CNAME"
    assert validation.inputs["validationRecordFqdns"] == [record.inputs["name"]]

    service = _one(declared_cell, "kubernetes:core/v1:Service")
    annotations = service.inputs["metadata"]["annotations"]
    assert annotations[LB + "type"] == "nlb" and annotations[LB + "ssl-cert"] == certificate.id
    assert load_balancer_problems(service.inputs) == []


def test_pooled_names_point_at_the_cells_load_balancer(declared_cell: DeclaredCell) -> None:
    [record] = [r for r in declared_cell.of_type("aws:route53/record:Record") if r.name.endswith("-ingress")]
    assert record.inputs["name"] == f"ingress.{CONFIG.domain}" and record.inputs["type"] == "CNAME"
    assert record.inputs["zoneId"] == declared_cell.outputs["zone_id"]
    [hostname] = record.inputs["records"]
    assert hostname.endswith(".elb.eu-west-1.amazonaws.com")


def test_the_policy_refuses_a_load_balancer_without_tls(declared_cell: DeclaredCell) -> None:
    service = _one(declared_cell, "kubernetes:core/v1:Service")
    inputs: dict[str, Any] = copy.deepcopy(dict(service.inputs))
    del inputs["metadata"]["annotations"][LB + "ssl-cert"]
    inputs["metadata"]["annotations"][LB + "type"] = "external"
    found = check_resources([ResourceRecord(service.type, service.name, inputs, service.id)])
    assert [(v.rule, v.message) for v in found] == [
        ("load-balancer-tls", "the load balancer is not an NLB"),
        ("load-balancer-tls", "the load balancer has no ACM certificate"),
    ]
