"""ingress-nginx behind an AWS Network Load Balancer that ends TLS with an ACM certificate, as plain manifests.

One definition for both places Canopy installs it: each cell's shared cluster (through the Pulumi cell stack,
``infra/cell/program.py``) and each silo's own cluster (server-side applied by the control plane,
``control_plane/kube/ingress_controller.py``). Pure Python: no client, no Pulumi.

The controller's Service is ``type: LoadBalancer`` with the AWS annotations: the cloud's service controller (the
in-tree AWS provider, or the AWS Load Balancer Controller when installed) makes an NLB whose ``https`` listener ends
TLS with the certificate and forwards plain HTTP to nginx; ``http`` goes to nginx's own redirect to ``https``. The
controller publishes the NLB's name on the Ingresses of its class (``--publish-service``): that is the address DNS
names point at. No admission webhook (it needs a certificate Job; Canopy renders every Ingress itself).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

CONTROLLER_VERSION = "v1.12.0"
CONTROLLER_IMAGE = (
    f"registry.k8s.io/ingress-nginx/controller:{CONTROLLER_VERSION}"
    "@sha256:e6b8de175acda6ca913891f0f727bca4527e797d52688cbe9fec9040d6f6b6fa"
)
CONTROLLER_NAME = "ingress-nginx-controller"  # the Deployment, its Service and ConfigMap
SERVICE_ACCOUNT = "ingress-nginx"
LB = "service.beta.kubernetes.io/aws-load-balancer-"
LB_CLEANUP_FINALIZER = "service.kubernetes.io/load-balancer-cleanup"
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
HTTP_PORT, REDIRECT_PORT, HEALTH_PORT = 80, 2443, 10254
RBAC = "rbac.authorization.k8s.io/v1"
INGRESS_CLASS_VERSION = "networking.k8s.io/v1"
JSON = dict[str, Any]
CELL_INGRESS_NAMESPACE = "ingress-nginx"  # pooled namespaces admit traffic from here (their NetworkPolicy)
CELL_INGRESS_CLASS = "nginx"  # the class of every pooled workspace's Ingress
CELL_INGRESS_LABEL = "ingress"  # ingress.<cell domain> names the cell's NLB; pooled names point there


@dataclass(frozen=True)
class IngressNginx:
    """One controller: where it runs, which Ingresses it serves, the certificate its NLB ends TLS with."""

    namespace: str
    ingress_class: str
    controller_class: str
    cluster_role: str
    certificate_arn: str
    labels: Mapping[str, str] = field(default_factory=dict)
    load_balancer_tags: Mapping[str, str] = field(default_factory=dict)
    watch_namespace: str | None = None  # None: every namespace
    replicas: int = 2

    def selector(self) -> dict[str, str]:
        """The controller's Pod selector (unique per controller: its namespace is)."""
        return {"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/instance": self.namespace}

    def all_labels(self) -> dict[str, str]:
        """Labels of every object of the controller."""
        base = {"app.kubernetes.io/component": "controller", "app.kubernetes.io/version": CONTROLLER_VERSION}
        return {**base, **self.selector(), **self.labels}


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> JSON:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


READ = ["get", "list", "watch"]
CLUSTER_RULES = [
    _rule([""], ["configmaps", "endpoints", "nodes", "pods", "secrets", "namespaces"], ["list", "watch"]),
    _rule([""], ["nodes"], ["get"]),
    _rule([""], ["services"], READ),
    _rule(["networking.k8s.io"], ["ingresses", "ingressclasses"], READ),
    _rule(["networking.k8s.io"], ["ingresses/status"], ["update"]),
    _rule(["discovery.k8s.io"], ["endpointslices"], READ),
    _rule(["coordination.k8s.io"], ["leases"], ["list", "watch"]),
    _rule([""], ["events"], ["create", "patch"]),
]
NAMESPACE_RULES = [
    _rule([""], ["namespaces"], ["get"]),
    _rule([""], ["configmaps", "pods", "secrets", "endpoints", "services"], READ),
    _rule(["coordination.k8s.io"], ["leases"], ["get", "update", "create"]),
    _rule([""], ["events"], ["create", "patch"]),
]


def _meta(spec: IngressNginx, name: str, namespaced: bool = True, **extra: Any) -> JSON:
    meta: JSON = {"name": name, "labels": spec.all_labels(), **extra}
    return {**meta, "namespace": spec.namespace} if namespaced else meta


def load_balancer_service(spec: IngressNginx) -> JSON:
    """The NLB in front of nginx: ``https`` (443) ends TLS with the certificate and forwards to nginx's plain port;
    ``http`` (80) goes to nginx's redirect to ``https``."""
    annotations = {
        LB + "type": "nlb",
        LB + "scheme": "internet-facing",
        LB + "ssl-cert": spec.certificate_arn,
        LB + "ssl-ports": "https",
        LB + "ssl-negotiation-policy": TLS_POLICY,
        LB + "backend-protocol": "tcp",
        LB + "cross-zone-load-balancing-enabled": "true",
        LB + "additional-resource-tags": ",".join(f"{k}={v}" for k, v in spec.load_balancer_tags.items() if v),
    }
    ports = [
        {"name": "http", "port": 80, "protocol": "TCP", "targetPort": "tohttps"},
        {"name": "https", "port": 443, "protocol": "TCP", "targetPort": "http"},
    ]
    body = {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "selector": spec.selector(), "ports": ports}
    metadata = _meta(spec, CONTROLLER_NAME, annotations=annotations)
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": body}


def _container(spec: IngressNginx) -> JSON:
    args = [
        "/nginx-ingress-controller",
        f"--publish-service=$(POD_NAMESPACE)/{CONTROLLER_NAME}",
        "--election-id=ingress-nginx-leader",
        f"--controller-class={spec.controller_class}",
        f"--ingress-class={spec.ingress_class}",
        f"--configmap=$(POD_NAMESPACE)/{CONTROLLER_NAME}",
        *([f"--watch-namespace={spec.watch_namespace}"] if spec.watch_namespace else []),
    ]
    health = {"httpGet": {"path": "/healthz", "port": HEALTH_PORT, "scheme": "HTTP"}, "periodSeconds": 10}
    return {
        "name": "controller",
        "image": CONTROLLER_IMAGE,
        "args": args,
        "env": [
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        "ports": [
            {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
            {"name": "tohttps", "containerPort": REDIRECT_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": {**health, "failureThreshold": 3},
        "livenessProbe": {**health, "initialDelaySeconds": 10, "failureThreshold": 5},
        "resources": {"requests": {"cpu": "100m", "memory": "90Mi"}, "limits": {"memory": "512Mi"}},
        "securityContext": {
            "runAsUser": 101,
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
        },
    }


def controller_deployment(spec: IngressNginx) -> JSON:
    """nginx, ``replicas`` of it, serving only its IngressClass (in ``watch_namespace`` when set)."""
    pod = {
        "serviceAccountName": SERVICE_ACCOUNT,
        "terminationGracePeriodSeconds": 300,
        "containers": [_container(spec)],
        "nodeSelector": {"kubernetes.io/os": "linux"},
    }
    body = {
        "replicas": spec.replicas,
        "selector": {"matchLabels": spec.selector()},
        "revisionHistoryLimit": 3,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "template": {"metadata": {"labels": spec.all_labels()}, "spec": pod},
    }
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(spec, CONTROLLER_NAME), "spec": body}


def ingress_nginx_manifests(spec: IngressNginx) -> list[JSON]:
    """Every object of the controller, in the order to apply them."""
    subject = [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": spec.namespace}]
    config = {
        "use-forwarded-headers": "false",  # the NLB passes TCP: nginx sees the client, not a proxy's headers
        "allow-snippet-annotations": "false",
        "http-snippet": f"server {{ listen {REDIRECT_PORT}; return 308 https://$host$request_uri; }}",
        "ssl-redirect": "false",  # TLS ends at the NLB; plain HTTP is redirected by the server above
        "hsts": "true",
    }
    role_ref = {"apiGroup": "rbac.authorization.k8s.io"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(spec, spec.namespace, namespaced=False)},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(spec, SERVICE_ACCOUNT)},
        {
            "apiVersion": RBAC,
            "kind": "ClusterRole",
            "metadata": _meta(spec, spec.cluster_role, namespaced=False),
            "rules": CLUSTER_RULES,
        },
        {
            "apiVersion": RBAC,
            "kind": "ClusterRoleBinding",
            "metadata": _meta(spec, spec.cluster_role, namespaced=False),
            "roleRef": {**role_ref, "kind": "ClusterRole", "name": spec.cluster_role},
            "subjects": subject,
        },
        {"apiVersion": RBAC, "kind": "Role", "metadata": _meta(spec, SERVICE_ACCOUNT), "rules": NAMESPACE_RULES},
        {
            "apiVersion": RBAC,
            "kind": "RoleBinding",
            "metadata": _meta(spec, SERVICE_ACCOUNT),
            "roleRef": {**role_ref, "kind": "Role", "name": SERVICE_ACCOUNT},
            "subjects": subject,
        },
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(spec, CONTROLLER_NAME), "data": config},
        {
            "apiVersion": INGRESS_CLASS_VERSION,
            "kind": "IngressClass",
            "metadata": _meta(spec, spec.ingress_class, namespaced=False),
            "spec": {"controller": spec.controller_class},
        },
        controller_deployment(spec),
        load_balancer_service(spec),
    ]


def load_balancer_problems(service: Mapping[str, Any]) -> list[str]:
    """What makes a ``LoadBalancer`` Service (its manifest) not an NLB ending TLS on 443 with an ACM certificate."""
    if (service.get("spec") or {}).get("type") != "LoadBalancer":
        return []
    annotations = (service.get("metadata") or {}).get("annotations") or {}
    problems = []
    if annotations.get(LB + "type") != "nlb":
        problems.append("the load balancer is not an NLB")
    if not str(annotations.get(LB + "ssl-cert") or "").startswith("arn:"):
        problems.append("the load balancer has no ACM certificate")
    ports = {str(p.get("name")): p.get("port") for p in (service.get("spec") or {}).get("ports") or []}
    if annotations.get(LB + "ssl-ports") != "https" or ports.get("https") != 443:
        problems.append("the load balancer does not end TLS on 443")
    return problems
