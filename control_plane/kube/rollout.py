"""Deployment rollout status, read exactly as ``kubectl rollout status`` reads it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from control_plane.kube.client import JSON, KubeClient
from control_plane.providers.base import ProviderError

POLL_SECONDS = 0.25


class RolloutError(ProviderError):
    """A rollout did not complete: its progress deadline passed, or our wait timed out."""


@dataclass(frozen=True)
class RolloutStatus:
    """``done``: rolled out; ``failed``: the Deployment exceeded its progress deadline; ``message``: kubectl's."""

    done: bool
    message: str
    failed: bool = False


def rollout_status(deployment: JSON) -> RolloutStatus:
    """kubectl's ``DeploymentStatusViewer.Status`` on a Deployment dict."""
    meta, spec, status = deployment["metadata"], deployment.get("spec", {}), deployment.get("status") or {}
    name = meta["name"]
    if meta.get("generation", 0) > status.get("observedGeneration", 0):
        return RolloutStatus(False, "Waiting for deployment spec update to be observed...")
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return RolloutStatus(False, f'deployment "{name}" exceeded its progress deadline', failed=True)
    wanted = spec.get("replicas")
    updated, replicas = status.get("updatedReplicas", 0), status.get("replicas", 0)
    available = status.get("availableReplicas", 0)
    waiting = f'Waiting for deployment "{name}" rollout to finish: '
    if wanted is not None and updated < wanted:
        return RolloutStatus(False, f"{waiting}{updated} out of {wanted} new replicas have been updated...")
    if replicas > updated:
        return RolloutStatus(False, f"{waiting}{replicas - updated} old replicas are pending termination...")
    if available < updated:
        return RolloutStatus(False, f"{waiting}{available} of {updated} updated replicas are available...")
    return RolloutStatus(True, f'deployment "{name}" successfully rolled out')


def wait_for_rollout(client: KubeClient, namespace: str, name: str, timeout: float) -> JSON:
    """Poll until the Deployment is rolled out and return it; :class:`RolloutError` names the reason otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        deployment = client.get("apps/v1", "Deployment", name, namespace)
        if deployment is None:
            raise RolloutError(f"deployment {namespace}/{name} does not exist")
        status = rollout_status(deployment)
        if status.done:
            return deployment
        if status.failed or time.monotonic() >= deadline:
            verdict = "failed" if status.failed else f"not complete after {timeout:g}s"
            hint = diagnose(client, deployment)
            message = f"rollout of {namespace}/{name} {verdict}: {status.message}"
            raise RolloutError(message + (f" ({hint})" if hint else ""))
        time.sleep(POLL_SECONDS)


def diagnose(client: KubeClient, deployment: JSON) -> str:
    """Why pods are not ready: a ReplicaFailure condition (e.g. quota), else the first waiting container's reason."""
    for condition in deployment.get("status", {}).get("conditions") or []:
        if condition.get("type") == "ReplicaFailure" and condition.get("status") == "True":
            return f"{condition.get('reason')}: {condition.get('message')}"
    match = deployment["spec"]["selector"].get("matchLabels", {})
    selector = ",".join(f"{k}={v}" for k, v in match.items())
    for pod in client.list_kind("v1", "Pod", deployment["metadata"]["namespace"], selector):
        problem = _container_problem(pod.get("status", {}))
        if problem:
            return f"pod {pod['metadata']['name']}: {problem}"
    return ""


def _container_problem(pod_status: dict[str, Any]) -> str:
    for container in pod_status.get("containerStatuses") or []:
        waiting = container.get("state", {}).get("waiting")
        if not container.get("ready") and waiting:
            return f"{waiting.get('reason')}: {waiting.get('message', '')}".rstrip(": ")
    return ""
