"""``kubectl rollout status`` for Deployments, test-side (the control plane keeps its own)."""

from __future__ import annotations

import time
from typing import Any

import kubernetes.client


class RolloutFailed(RuntimeError):
    """The Deployment exceeded its progress deadline (ProgressDeadlineExceeded)."""


def rollout_status(deployment: Any) -> tuple[bool, str]:
    """(done, message) for a V1Deployment, as kubectl's DeploymentStatusViewer computes it.

    Raises RolloutFailed when the Progressing condition says ProgressDeadlineExceeded.
    """
    meta, spec, status = deployment.metadata, deployment.spec, deployment.status
    name = meta.name
    if status is None or (status.observed_generation or 0) < (meta.generation or 0):
        return False, f"waiting for deployment {name!r} spec update to be observed"
    for cond in status.conditions or []:
        if cond.type == "Progressing" and cond.reason == "ProgressDeadlineExceeded":
            raise RolloutFailed(f"deployment {name!r} exceeded its progress deadline: {cond.message}")
    want = spec.replicas if spec.replicas is not None else 1
    updated, replicas = status.updated_replicas or 0, status.replicas or 0
    available = status.available_replicas or 0
    if updated < want:
        return False, f"{updated} out of {want} new replicas have been updated"
    if replicas > updated:
        return False, f"{replicas - updated} old replicas are pending termination"
    if available < updated:
        return False, f"{available} of {updated} updated replicas are available"
    return True, f"deployment {name!r} successfully rolled out"


def wait_for_rollout(
    apps_api: kubernetes.client.AppsV1Api, namespace: str, name: str, timeout: float = 60.0, interval: float = 0.2
) -> Any:
    """Polls the Deployment until rolled out and returns it; TimeoutError (last message) or RolloutFailed."""
    deadline = time.monotonic() + timeout
    while True:
        deployment = apps_api.read_namespaced_deployment(name, namespace)
        done, message = rollout_status(deployment)
        if done:
            return deployment
        if time.monotonic() >= deadline:
            raise TimeoutError(f"rollout of {namespace}/{name} not done after {timeout:.0f}s: {message}")
        time.sleep(interval)
