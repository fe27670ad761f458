"""The ingress controller of a silo cluster: ingress-nginx behind an AWS Network Load Balancer, TLS ended at the NLB.

Rendered as data (:func:`render_controller`) and server-side applied by :class:`IngressControllerInstaller`, like the
workspace's own objects. The controller's Service is ``type: LoadBalancer`` with the AWS annotations: the cloud's
service controller (the in-tree AWS provider, or the AWS Load Balancer Controller when installed) makes an NLB whose
``https`` listener ends TLS with the workspace's ACM certificate and forwards plain HTTP to nginx; ``http`` is
answered by nginx's own redirect to ``https``. The controller publishes the NLB's name on the Ingresses of its class
(``--publish-service``), which is the address the workspace's DNS name points at.

Everything is named after the workspace (a silo cluster holds one workspace; the names also keep two silos apart on
a cluster shared by tests): namespace ``ingress-<short id>``, IngressClass ``canopy-<short id>`` watched only in the
workspace's namespace. The objects are labelled ``canopy/ingress-for=<workspace id>`` (not ``canopy/workspace``:
they are the cluster's, not the workspace server's, and the compute step neither owns nor sweeps them).

No admission webhook is installed (it needs a certificate Job; Canopy renders every Ingress itself).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from control_plane.kube.client import JSON, KubeClient, ref
from control_plane.kube.rollout import POLL_SECONDS, wait_for_rollout
from control_plane.providers.base import ProviderError, WorkspaceSpec
from infra.conventions import MANAGED_BY, short_id

CONTROLLER_VERSION = "v1.12.0"
CONTROLLER_IMAGE = (
    f"registry.k8s.io/ingress-nginx/controller:{CONTROLLER_VERSION}"
    "@sha256:e6b8de175acda6ca913891f0f727bca4527e797d52688cbe9fec9040d6f6b6fa"
)
CONTROLLER_NAME = "ingress-nginx-controller"  # the Deployment, its Service and ConfigMap
SERVICE_ACCOUNT = "ingress-nginx"
LABEL_FOR = "canopy/ingress-for"
LB = "service.beta.kubernetes.io/aws-load-balancer-"
LB_CLEANUP_FINALIZER = "service.kubernetes.io/load-balancer-cleanup"
HTTP_PORT, REDIRECT_PORT, HEALTH_PORT = 80, 2443, 10254
RBAC = "rbac.authorization.k8s.io/v1"
INGRESS_CLASS_VERSION = "networking.k8s.io/v1"


@dataclass(frozen=True)
class ControllerNames:
    """Where a silo's controller lives and which Ingresses it serves."""

    namespace: str
    ingress_class: str
    controller_class: str
    cluster_role: str
    watch_namespace: str

    @classmethod
    def of(cls, ws: WorkspaceSpec, workspace_namespace: str) -> ControllerNames:
        """The names of ``ws``'s controller (``workspace_namespace``: where its Ingress is)."""
        sid = short_id(ws.id)
        return cls(
            namespace=f"ingress-{sid}",
            ingress_class=f"canopy-{sid}",
            controller_class=f"k8s.io/ingress-nginx-{sid}",
            cluster_role=f"canopy-ingress-{sid}",
            watch_namespace=workspace_namespace,
        )


def controller_labels(ws: WorkspaceSpec) -> dict[str, str]:
    """Labels of every object of ``ws``'s controller."""
    return {
        "app.kubernetes.io/name": "ingress-nginx",
        "app.kubernetes.io/component": "controller",
        "app.kubernetes.io/version": CONTROLLER_VERSION,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        LABEL_FOR: str(ws.id),
    }


def _selector(ws: WorkspaceSpec) -> dict[str, str]:
    return {"app.kubernetes.io/name": "ingress-nginx", LABEL_FOR: str(ws.id)}


def _meta(ws: WorkspaceSpec, name: str, namespace: str | None = None, **extra: Any) -> JSON:
    meta: JSON = {"name": name, "labels": controller_labels(ws), **extra}
    if namespace:
        meta["namespace"] = namespace
    return meta


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


def render_load_balancer_service(ws: WorkspaceSpec, names: ControllerNames, certificate_arn: str) -> JSON:
    """The NLB in front of nginx: ``https`` (443) ends TLS with ``certificate_arn`` and forwards to nginx's plain
    port; ``http`` (80) goes to nginx's redirect to ``https``."""
    annotations = {
        LB + "type": "nlb",
        LB + "scheme": "internet-facing",
        LB + "ssl-cert": certificate_arn,
        LB + "ssl-ports": "https",
        LB + "ssl-negotiation-policy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
        LB + "backend-protocol": "tcp",
        LB + "cross-zone-load-balancing-enabled": "true",
        LB + "additional-resource-tags": ",".join(f"{k}={v}" for k, v in ws.tags.items() if v),
    }
    ports = [
        {"name": "http", "port": 80, "protocol": "TCP", "targetPort": "tohttps"},
        {"name": "https", "port": 443, "protocol": "TCP", "targetPort": "http"},
    ]
    spec = {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "selector": _selector(ws), "ports": ports}
    metadata = _meta(ws, CONTROLLER_NAME, names.namespace, annotations=annotations)
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}


def _container(names: ControllerNames) -> JSON:
    args = [
        "/nginx-ingress-controller",
        f"--publish-service=$(POD_NAMESPACE)/{CONTROLLER_NAME}",
        "--election-id=ingress-nginx-leader",
        f"--controller-class={names.controller_class}",
        f"--ingress-class={names.ingress_class}",
        f"--watch-namespace={names.watch_namespace}",
        f"--configmap=$(POD_NAMESPACE)/{CONTROLLER_NAME}",
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


def render_deployment(ws: WorkspaceSpec, names: ControllerNames, replicas: int) -> JSON:
    """nginx, ``replicas`` of it spread over nodes, serving only ``names.ingress_class`` in the workspace's
    namespace."""
    pod = {
        "serviceAccountName": SERVICE_ACCOUNT,
        "terminationGracePeriodSeconds": 300,
        "containers": [_container(names)],
        "nodeSelector": {"kubernetes.io/os": "linux"},
    }
    spec = {
        "replicas": replicas,
        "selector": {"matchLabels": _selector(ws)},
        "revisionHistoryLimit": 3,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "template": {"metadata": {"labels": controller_labels(ws)}, "spec": pod},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(ws, CONTROLLER_NAME, names.namespace),
        "spec": spec,
    }


def render_controller(ws: WorkspaceSpec, names: ControllerNames, certificate_arn: str, replicas: int = 2) -> list[JSON]:
    """Every object of ``ws``'s controller, in the order to apply them."""
    ns = names.namespace
    subject = [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": ns}]
    config = {
        "use-forwarded-headers": "false",  # the NLB passes TCP: nginx sees the client, not a proxy's headers
        "allow-snippet-annotations": "false",
        "http-snippet": f"server {{ listen {REDIRECT_PORT}; return 308 https://$host$request_uri; }}",
        "ssl-redirect": "false",  # TLS ends at the NLB; plain HTTP is redirected by the server above
        "hsts": "true",
    }
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(ws, ns)},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(ws, SERVICE_ACCOUNT, ns)},
        {"apiVersion": RBAC, "kind": "ClusterRole", "metadata": _meta(ws, names.cluster_role), "rules": CLUSTER_RULES},
        {
            "apiVersion": RBAC,
            "kind": "ClusterRoleBinding",
            "metadata": _meta(ws, names.cluster_role),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": names.cluster_role},
            "subjects": subject,
        },
        {"apiVersion": RBAC, "kind": "Role", "metadata": _meta(ws, SERVICE_ACCOUNT, ns), "rules": NAMESPACE_RULES},
        {
            "apiVersion": RBAC,
            "kind": "RoleBinding",
            "metadata": _meta(ws, SERVICE_ACCOUNT, ns),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": SERVICE_ACCOUNT},
            "subjects": subject,
        },
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(ws, CONTROLLER_NAME, ns), "data": config},
        {
            "apiVersion": INGRESS_CLASS_VERSION,
            "kind": "IngressClass",
            "metadata": _meta(ws, names.ingress_class),
            "spec": {"controller": names.controller_class},
        },
        render_deployment(ws, names, replicas),
        render_load_balancer_service(ws, names, certificate_arn),
    ]


CONTROLLER_KINDS = (
    ("v1", "Namespace"),
    ("v1", "ServiceAccount"),
    (RBAC, "ClusterRole"),
    (RBAC, "ClusterRoleBinding"),
    (RBAC, "Role"),
    (RBAC, "RoleBinding"),
    ("v1", "ConfigMap"),
    (INGRESS_CLASS_VERSION, "IngressClass"),
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
)
CLUSTER_SCOPED = ("ClusterRole", "ClusterRoleBinding", "IngressClass")


def load_balancer_address(service: JSON | None) -> str | None:
    """The hostname (or IP) the cloud published on a ``LoadBalancer`` Service, if any."""
    points = ((service or {}).get("status") or {}).get("loadBalancer", {}).get("ingress") or []
    found = [str(p.get("hostname") or p.get("ip")) for p in points if p.get("hostname") or p.get("ip")]
    return found[0] if found else None


class IngressControllerInstaller:
    """Ensures, removes and lists a silo's controller on one cluster (``timeout``: how long each wait lasts)."""

    def __init__(self, client: KubeClient, timeout: float) -> None:
        self._client = client
        self._timeout = timeout

    def ensure(self, ws: WorkspaceSpec, names: ControllerNames, certificate_arn: str) -> tuple[str, list[str]]:
        """Apply the controller, wait for its rollout and for the load balancer's address; the address and the
        objects this call created."""
        created = [ref(obj) for obj in render_controller(ws, names, certificate_arn) if self._client.apply(obj).created]
        wait_for_rollout(self._client, names.namespace, CONTROLLER_NAME, self._timeout)
        found: list[str] = []

        def published() -> bool:
            address = load_balancer_address(self._client.get("v1", "Service", CONTROLLER_NAME, names.namespace))
            found.extend([address] if address else [])
            return bool(found)

        self._wait(published, f"the load balancer address of service {names.namespace}/{CONTROLLER_NAME}")
        return found[0], created

    def teardown(self, ws: WorkspaceSpec, names: ControllerNames) -> None:
        """Delete the Service first and wait until the cloud has let its load balancer go (the Service's finalizer
        is removed then: the certificate is free after that), then everything else."""
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": CONTROLLER_NAME, "namespace": names.namespace},
        }
        self._client.delete(service)
        self._wait(
            lambda: self._client.get("v1", "Service", CONTROLLER_NAME, names.namespace) is None,
            f"the load balancer of {names.namespace} to be deleted",
        )
        for obj in self.objects(ws):
            if obj["kind"] in CLUSTER_SCOPED:
                self._client.delete(obj)
        self._client.delete({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": names.namespace}})
        self._wait(
            lambda: self._client.get("v1", "Namespace", names.namespace) is None,
            f"namespace {names.namespace} to be deleted",
        )

    def objects(self, ws: WorkspaceSpec) -> list[JSON]:
        """Every object labelled as ``ws``'s controller."""
        return self._client.list_by_labels(f"{LABEL_FOR}={ws.id}", CONTROLLER_KINDS)

    def _wait(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self._timeout
        while not done():
            if time.monotonic() >= deadline:
                raise ProviderError(f"timed out after {self._timeout:g}s waiting for {what}")
            time.sleep(POLL_SECONDS)
