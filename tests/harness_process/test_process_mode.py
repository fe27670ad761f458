"""The test kubelet's process mode and the stand-in ingress: a provisioned Professional workspace runs as a real
workspace server process, its Pod's readiness follows the real probe, and it answers at its public URL through
the ingress; a Deployment's image changes, crashes and deletions behave as the harness documents."""

from __future__ import annotations

import contextlib
import os
import signal
import ssl
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from control_plane.kube.client import KubeClient
from control_plane.kube.render import APP_NAME
from tests.harness.fixtures import WORKSPACE_SERVER_IMAGE
from tests.harness.ingress import StandInIngress
from tests.harness.kubelet_process import http_probe, loopback_twin
from tests.harness.kubernetes import TestCluster
from tests.waiting import wait_until

pytestmark = pytest.mark.slow
PING = "/api/v4/system/ping"
NOT_IN_MAP = "ghcr.io/canopy/workspace-server:0.1.0"


def public_get(ingress: StandInIngress, url: str) -> httpx.Response:
    """GET through the stand-in ingress, trusting its CA (as the control plane does through its environment)."""
    with httpx.Client(proxy=ingress.url, verify=ssl.create_default_context(cafile=ingress.ca_file)) as client:
        return client.get(url, timeout=5)


def public_status(ingress: StandInIngress, url: str) -> int | None:
    """:func:`public_get`'s status, None when it fails (a stopped server's endpoint listed a moment longer)."""
    try:
        return public_get(ingress, url).status_code
    except httpx.HTTPError:
        return None


def pods(kube: KubeClient, namespace: str) -> list[dict[str, Any]]:
    """The namespace's Pods not being deleted."""
    return [p for p in kube.list_kind("v1", "Pod", namespace) if not p["metadata"].get("deletionTimestamp")]


def ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def processes_of(cluster: TestCluster, pod: dict[str, Any]) -> list[int]:
    """Pids of the processes the kubelet runs for the Pod (their working directory is the Pod's)."""
    meta = pod["metadata"]
    pod_dir = cluster.workdir / "kubelet" / "pods" / f"{meta['namespace']}_{meta['name']}_{meta['uid']}"
    found = []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if proc.name.isdigit() and Path(os.readlink(proc / "cwd")) == pod_dir:
                found.append(int(proc.name))
    return found


def only_pod(kube: KubeClient, namespace: str) -> dict[str, Any]:
    """The namespace's one Pod."""
    (pod,) = pods(kube, namespace)
    return pod


def namespace_of(kube: KubeClient, workspace: Any) -> str:
    """The workspace's namespace (where its Deployment is)."""
    (deployment,) = kube.list_by_labels(f"canopy/workspace={workspace.id}", [("apps/v1", "Deployment")])
    return str(deployment["metadata"]["namespace"])


def test_workspace_answers_at_its_public_url(
    workspace: Any, kube: KubeClient, kube_process_cluster: TestCluster, ingress: StandInIngress
) -> None:
    namespace = namespace_of(kube, workspace)
    pod = only_pod(kube, namespace)
    deployment = kube.get("apps/v1", "Deployment", APP_NAME, namespace)
    assert deployment is not None
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    (status,) = pod["status"]["containerStatuses"]
    assert image == WORKSPACE_SERVER_IMAGE and status["image"] == image
    assert status["ready"] and "running" in status["state"] and ready(pod)
    assert processes_of(kube_process_cluster, pod), "the Pod is a running process"
    host = workspace.endpoint_url.removeprefix("https://")
    assert ingress.served[host] >= 1, "Available: the control plane pinged the workspace through the ingress"

    response = public_get(ingress, f"{workspace.endpoint_url}{PING}")
    assert response.status_code == 200 and response.json()["status"] == "OK"
    unknown = public_get(ingress, f"https://nobody-{uuid.uuid4().hex[:6]}.example.com{PING}")
    assert unknown.status_code == 404


def test_readiness_follows_the_real_probe(
    workspace: Any, kube: KubeClient, kube_process_cluster: TestCluster, ingress: StandInIngress
) -> None:
    namespace = namespace_of(kube, workspace)
    pod = only_pod(kube, namespace)
    pids = processes_of(kube_process_cluster, pod)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        wait_until("the stopped server's Pod not ready", lambda: not ready(only_pod(kube, namespace)), 20)
        wait_until(
            "no ready endpoint at the ingress",
            lambda: public_status(ingress, workspace.endpoint_url + PING) == 503,
            30,
        )
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    wait_until("the Pod ready again", lambda: ready(only_pod(kube, namespace)), 20)
    wait_until(
        "the ping through the ingress",
        lambda: public_status(ingress, workspace.endpoint_url + PING) == 200,
        30,
    )


def test_image_changes_crashes_and_deletion(
    workspace: Any, kube: KubeClient, kube_process_cluster: TestCluster
) -> None:
    """A copy of the workspace's Deployment (Secret and ConfigMap too) in a namespace of the test's own."""
    source, namespace = namespace_of(kube, workspace), f"copy-{uuid.uuid4().hex[:8]}"
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    try:
        for api_version, kind, name in _copied(kube, source):
            obj = kube.get(api_version, kind, name, source)
            assert obj is not None
            copy = {k: v for k, v in obj.items() if k not in ("metadata", "status")}
            kube.apply(_unlabelled(copy) | {"metadata": {"name": name, "namespace": namespace}})
        _ready_only_once_answering(kube, namespace)
        _crash_restarts(kube, kube_process_cluster, namespace)
        _image_changes(kube, kube_process_cluster, namespace)
    finally:
        kube.delete({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})


def _unlabelled(obj: dict[str, Any]) -> dict[str, Any]:
    """A Deployment without the workspace's labels (the control plane must not take it for the workspace's) or
    service account; other objects as they are."""
    if obj["kind"] == "Deployment":
        obj["spec"]["selector"] = {"matchLabels": {"app": "copy"}}
        obj["spec"]["template"]["metadata"] = {"labels": {"app": "copy"}}
        for key in ("serviceAccountName", "serviceAccount"):
            obj["spec"]["template"]["spec"].pop(key, None)
    return obj


def _copied(kube: KubeClient, namespace: str) -> list[tuple[str, str, str]]:
    deployment = kube.get("apps/v1", "Deployment", APP_NAME, namespace)
    assert deployment is not None
    env_from = deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"]
    sources = [
        ("v1", "Secret" if "secretRef" in e else "ConfigMap", (e.get("secretRef") or e["configMapRef"])["name"])
        for e in env_from
    ]
    return [*sources, ("apps/v1", "Deployment", APP_NAME)]


def _ready_only_once_answering(kube: KubeClient, namespace: str) -> None:
    """Polls the new Pod until Ready, probing its server at each look: never Ready while it does not answer, and
    seen running but not Ready while it did not answer yet (the server takes seconds to start)."""
    seen: list[tuple[bool, bool]] = []  # (Ready, answering) per look at the running Pod

    def pod_ready() -> bool:
        found = pods(kube, namespace)
        status = (found[0].get("status", {}).get("containerStatuses") or [{}])[0] if len(found) == 1 else {}
        if "running" not in status.get("state", {}):
            return False
        answering = http_probe(loopback_twin(found[0]["status"]["podIP"]), 8065, PING, 1)
        seen.append((ready(found[0]), answering))
        return seen[-1][0]

    wait_until("the copied Pod ready", pod_ready, 60)
    assert (False, False) in seen, f"running but not ready while the server did not answer yet: {seen}"
    assert (True, False) not in seen, f"never ready while the server does not answer: {seen}"


def _crash_restarts(kube: KubeClient, cluster: TestCluster, namespace: str) -> None:
    pod = only_pod(kube, namespace)
    for pid in processes_of(cluster, pod):
        os.kill(pid, signal.SIGKILL)

    def restarted() -> bool:
        status = only_pod(kube, namespace)["status"]["containerStatuses"][0]
        killed = status["lastState"].get("terminated", {}).get("exitCode") == 128 + signal.SIGKILL
        return bool(status["restartCount"] == 1 and status["ready"] and killed)

    wait_until("the killed server restarted and ready", restarted, 60)


def _image_changes(kube: KubeClient, cluster: TestCluster, namespace: str) -> None:
    old = only_pod(kube, namespace)
    _set_image(kube, namespace, NOT_IN_MAP)

    def replaced() -> bool:
        found = pods(kube, namespace)
        return len(found) == 1 and found[0]["metadata"]["uid"] != old["metadata"]["uid"] and ready(found[0])

    wait_until("the Pod of the image not in the map ready (no container)", replaced, 60)
    assert not processes_of(cluster, only_pod(kube, namespace)), "no process for an image not in the map"
    wait_until("the old Pod's process stopped", lambda: not processes_of(cluster, old), 40)

    _set_image(kube, namespace, f"{WORKSPACE_SERVER_IMAGE}:broken")

    def crash_looping() -> bool:
        statuses = [(p.get("status", {}).get("containerStatuses") or [{}])[0] for p in pods(kube, namespace)]
        waiting = [s for s in statuses if s.get("image", "").endswith(":broken")]
        return bool(waiting) and waiting[0]["state"].get("waiting", {}).get("reason") == "CrashLoopBackOff"

    wait_until("the :broken Pod in CrashLoopBackOff", crash_looping, 60)


def _set_image(kube: KubeClient, namespace: str, image: str) -> None:
    deployment = kube.get("apps/v1", "Deployment", APP_NAME, namespace)
    assert deployment is not None
    kube.update(deployment, lambda d: d["spec"]["template"]["spec"]["containers"][0].update(image=image))
