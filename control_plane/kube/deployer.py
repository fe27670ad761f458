"""``KubernetesCompute``: the workspace server as a Deployment on a Kubernetes cluster (a ComputeProvider).

Every ensure renders the workspace's objects, server-side applies them in order (a no-op when nothing
changed), and waits until the rollout is complete as ``kubectl rollout status`` would say.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from control_plane.kube.client import JSON, KubeApiError, KubeClient, ref
from control_plane.kube.render import (
    APP_NAME,
    DeploySettings,
    choose_api_versions,
    internal_url,
    is_pooled,
    kube_server_config,
    managed_kinds,
    namespace_name,
    render_ingress,
    render_wake_service,
    render_workspace,
    selector_labels,
    workspace_selector,
)
from control_plane.kube.rollout import POLL_SECONDS, wait_for_rollout
from control_plane.providers.base import Ensured, ProviderError, ServerConfig, WorkspaceSpec

ClientFor = Callable[[WorkspaceSpec], KubeClient]
CONTROLLER_OWNED = ("Namespace", "ReplicaSet", "Pod")  # not deleted one by one: their owners take them along


def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            raise ProviderError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(POLL_SECONDS)


def _scale_to_zero(scale: JSON) -> None:
    scale["spec"]["replicas"] = 0


def _scaled_down(deployment: JSON | None) -> bool:
    """No pod left, and the controller has seen the latest spec (or the Deployment is gone)."""
    if deployment is None:
        return True
    status = deployment.get("status", {})
    return not status.get("replicas") and status.get("observedGeneration", 0) >= deployment["metadata"]["generation"]


class KubernetesCompute:
    """Workspace servers on the cluster ``client_for(ws)`` names (a cell's shared cluster or a silo's own)."""

    def __init__(self, settings: DeploySettings, client_for: ClientFor) -> None:
        self._settings = settings
        self._client_for = client_for

    def _target(self, ws: WorkspaceSpec) -> tuple[KubeClient, str]:
        return self._client_for(ws), namespace_name(self._settings, ws)

    def _deployment_ref(self, namespace: str) -> JSON:
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": APP_NAME, "namespace": namespace}}

    def ensure(self, ws: WorkspaceSpec, config: ServerConfig) -> Ensured:
        """Apply Namespace (+ quota, limits, network policies when pooled), ServiceAccount, Secret, ConfigMap,
        Deployment, Service (+ canopy-wake with a wake backend), Ingress, PDB (+ HPA for enterprise); then wait for
        the rollout. Waking from zero replicas, the Ingress routes to the wake route until the rollout is complete.
        ``created`` names the objects that are new.
        """
        client, ns = self._target(ws)
        versions = choose_api_versions(client.served_versions)
        current = client.get("apps/v1", "Deployment", APP_NAME, ns)
        asleep = current is not None and not current["spec"].get("replicas")
        replicas = self._replicas(ws, current)
        objects = render_workspace(ws, kube_server_config(config), self._settings, versions, replicas, asleep=asleep)
        created = tuple(ref(obj) for obj in objects if client.apply(obj).created)
        deployment = wait_for_rollout(client, ns, APP_NAME, self._settings.rollout_timeout)
        if asleep:
            client.apply(render_ingress(ws, ns, self._settings, versions.ingress))
        outputs = {
            "namespace": ns,
            "deployment": APP_NAME,
            "internal_url": internal_url(self._settings, ws),
            "observed_image": deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        }
        return Ensured(outputs, created)

    def running_images(self, ws: WorkspaceSpec) -> tuple[str, ...]:
        """The images the workspace's ready Pods run, as their status reports them (one per ready container)."""
        client, ns = self._target(ws)
        selector = ",".join(f"{k}={v}" for k, v in selector_labels(ws).items())
        images = []
        for pod in client.list_kind("v1", "Pod", ns, selector):
            status = pod.get("status") or {}
            if pod["metadata"].get("deletionTimestamp") or status.get("phase") != "Running":
                continue
            images += [c.get("image", "") for c in status.get("containerStatuses") or [] if c.get("ready")]
        return tuple(images)

    def _replicas(self, ws: WorkspaceSpec, current: JSON | None) -> int:
        """The tier's replicas; with an HPA (enterprise), never fewer than it chose, and a hibernated one wakes."""
        wanted = self._settings.replicas[ws.tier]
        if is_pooled(ws) or current is None:
            return wanted
        return max(wanted, int(current["spec"].get("replicas", 0)))

    def stop(self, ws: WorkspaceSpec) -> None:
        """Hibernate: route the Ingress to the wake route (with a wake backend), then scale the Deployment to zero
        (read-modify-write of its scale) and wait for its pods to go.

        The Secret, ConfigMap and everything else stay, so the next ``ensure`` wakes it.
        """
        client, ns = self._target(ws)
        deployment = self._deployment_ref(ns)
        if self._settings.wake_backend and client.get("apps/v1", "Deployment", APP_NAME, ns) is not None:
            versions = choose_api_versions(client.served_versions)
            client.apply(render_wake_service(ws, ns, self._settings))  # made before the setting was, perhaps
            client.apply(render_ingress(ws, ns, self._settings, versions.ingress, asleep=True))
        try:
            client.update(deployment, _scale_to_zero, subresource="scale")
        except KubeApiError as exc:
            if exc.status == 404:
                return
            raise
        _wait(
            lambda: _scaled_down(client.get("apps/v1", "Deployment", APP_NAME, ns)),
            self._settings.rollout_timeout,
            f"{ns}/{APP_NAME} to scale to zero",
        )

    def teardown(self, ws: WorkspaceSpec) -> None:
        """Delete the namespace (pooled: it cascades) or, on an enterprise cluster, the workspace's objects first
        and then the namespace; wait until the namespace is gone (everything in it is gone then).
        """
        client, ns = self._target(ws)
        if not is_pooled(ws):
            for obj in self._owned(client, ws):
                if obj["kind"] not in CONTROLLER_OWNED:
                    client.delete(obj, propagation="Foreground")
        client.delete({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        _wait(lambda: client.get("v1", "Namespace", ns) is None, self._settings.rollout_timeout, f"{ns} to be deleted")

    def leftovers(self, ws: WorkspaceSpec) -> list[str]:
        """Every object labelled with the workspace id, across the kinds a workspace can own (its namespace too)."""
        client, _ = self._target(ws)
        return [ref(obj) for obj in self._owned(client, ws)]

    def _owned(self, client: KubeClient, ws: WorkspaceSpec) -> list[JSON]:
        kinds = managed_kinds(choose_api_versions(client.served_versions))
        return client.list_by_labels(workspace_selector(ws), kinds)
