"""The ingress controller of a silo cluster (:mod:`infra.ingress`: ingress-nginx behind an NLB that ends TLS with the
workspace's ACM certificate), server-side applied like the workspace's own objects.

Everything is named after the workspace (a silo cluster holds one workspace; the names also keep two silos apart on
a cluster shared by tests): namespace ``ingress-<short id>``, IngressClass ``canopy-<short id>`` watched only in the
workspace's namespace. The objects are labelled ``canopy/ingress-for=<workspace id>`` (not ``canopy/workspace``:
they are the cluster's, not the workspace server's, and the compute step neither owns nor sweeps them).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from control_plane.kube.client import JSON, KubeClient, ref
from control_plane.kube.rollout import POLL_SECONDS, wait_for_rollout
from control_plane.providers.base import ProviderError, WorkspaceSpec
from infra.conventions import MANAGED_BY, short_id
from infra.ingress import (
    CONTROLLER_NAME,
    INGRESS_CLASS_VERSION,
    RBAC,
    IngressNginx,
    ingress_nginx_manifests,
)

LABEL_FOR = "canopy/ingress-for"
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


def silo_controller(ws: WorkspaceSpec, workspace_namespace: str, certificate_arn: str = "") -> IngressNginx:
    """``ws``'s controller, serving the Ingress in ``workspace_namespace`` behind an NLB with ``certificate_arn``."""
    sid = short_id(ws.id)
    return IngressNginx(
        namespace=f"ingress-{sid}",
        ingress_class=f"canopy-{sid}",
        controller_class=f"k8s.io/ingress-nginx-{sid}",
        cluster_role=f"canopy-ingress-{sid}",
        certificate_arn=certificate_arn,
        labels={"app.kubernetes.io/managed-by": MANAGED_BY, LABEL_FOR: str(ws.id)},
        load_balancer_tags=ws.tags,
        watch_namespace=workspace_namespace,
    )


def load_balancer_address(obj: JSON | None) -> str | None:
    """The hostname (or IP) published in a Service's or an Ingress's ``status.loadBalancer``, if any."""
    points = ((obj or {}).get("status") or {}).get("loadBalancer", {}).get("ingress") or []
    found = [str(p.get("hostname") or p.get("ip")) for p in points if p.get("hostname") or p.get("ip")]
    return found[0] if found else None


class IngressControllerInstaller:
    """Ensures, removes and lists a silo's controller on one cluster (``timeout``: how long each wait lasts)."""

    def __init__(self, client: KubeClient, timeout: float) -> None:
        self._client = client
        self._timeout = timeout

    def ensure(self, controller: IngressNginx) -> tuple[str, list[str]]:
        """Apply the controller, wait for its rollout and for the load balancer's address; the address and the
        objects this call created."""
        created = [ref(obj) for obj in ingress_nginx_manifests(controller) if self._client.apply(obj).created]
        wait_for_rollout(self._client, controller.namespace, CONTROLLER_NAME, self._timeout)
        found: list[str] = []

        def published() -> bool:
            address = load_balancer_address(self._client.get("v1", "Service", CONTROLLER_NAME, controller.namespace))
            found.extend([address] if address else [])
            return bool(found)

        self._wait(published, f"the load balancer address of service {controller.namespace}/{CONTROLLER_NAME}")
        return found[0], created

    def teardown(self, ws: WorkspaceSpec, controller: IngressNginx) -> None:
        """Delete the Service first and wait until the cloud has let its load balancer go (its finalizer is removed
        then, and the certificate is free), then everything else."""
        ns = controller.namespace
        self._client.delete(
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": CONTROLLER_NAME, "namespace": ns}}
        )
        self._wait(
            lambda: self._client.get("v1", "Service", CONTROLLER_NAME, ns) is None, f"the load balancer of {ns} to go"
        )
        for obj in self.objects(ws):
            if obj["kind"] in CLUSTER_SCOPED:
                self._client.delete(obj)
        self._client.delete({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        self._wait(lambda: self._client.get("v1", "Namespace", ns) is None, f"namespace {ns} to be deleted")

    def objects(self, ws: WorkspaceSpec) -> list[JSON]:
        """Every object labelled as ``ws``'s controller."""
        return self._client.list_by_labels(f"{LABEL_FOR}={ws.id}", CONTROLLER_KINDS)

    def _wait(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self._timeout
        while not done():
            if time.monotonic() >= deadline:
                raise ProviderError(f"timed out after {self._timeout:g}s waiting for {what}")
            time.sleep(POLL_SECONDS)
