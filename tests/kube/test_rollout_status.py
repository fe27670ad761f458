"""``rollout_status`` on crafted Deployments: every branch of kubectl's DeploymentStatusViewer."""

from __future__ import annotations

import copy
from typing import Any

from control_plane.kube.rollout import RolloutStatus, rollout_status

ROLLED_OUT: dict[str, Any] = {
    "metadata": {"name": "web", "generation": 4},
    "spec": {"replicas": 2},
    "status": {
        "observedGeneration": 4,
        "replicas": 2,
        "updatedReplicas": 2,
        "readyReplicas": 2,
        "availableReplicas": 2,
        "conditions": [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
        ],
    },
}


def status_with(**changes: Any) -> RolloutStatus:
    """rollout_status of ROLLED_OUT with ``changes`` (``spec__replicas=3`` sets spec.replicas)."""
    deployment = copy.deepcopy(ROLLED_OUT)
    for key, value in changes.items():
        section, field = key.split("__")
        if value is None:
            deployment[section].pop(field)
        else:
            deployment[section][field] = value
    return rollout_status(deployment)


def test_rolled_out() -> None:
    assert rollout_status(ROLLED_OUT) == RolloutStatus(True, 'deployment "web" successfully rolled out')


def test_spec_update_not_yet_observed() -> None:
    status = status_with(status__observedGeneration=3)
    assert status == RolloutStatus(False, "Waiting for deployment spec update to be observed...")
    assert status_with(status__observedGeneration=5).done  # newer than generation: observed
    assert not rollout_status({"metadata": {"name": "web", "generation": 1}, "spec": {"replicas": 1}}).done


def test_progress_deadline_exceeded_is_a_failure() -> None:
    conditions = [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]
    status = status_with(status__conditions=conditions, status__availableReplicas=0)
    assert status == RolloutStatus(False, 'deployment "web" exceeded its progress deadline', failed=True)


def test_the_deadline_condition_counts_only_once_observed() -> None:
    conditions = [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]
    status = status_with(status__conditions=conditions, status__observedGeneration=3)
    assert not status.failed and "spec update to be observed" in status.message


def test_other_progressing_reasons_are_not_failures() -> None:
    conditions = [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}]
    assert status_with(status__conditions=conditions) == rollout_status(ROLLED_OUT)
    other = [{"type": "ReplicaFailure", "status": "True", "reason": "ProgressDeadlineExceeded"}]
    assert not status_with(status__conditions=other).failed


def test_new_replicas_not_all_updated() -> None:
    status = status_with(spec__replicas=3)
    assert status == RolloutStatus(
        False, 'Waiting for deployment "web" rollout to finish: 2 out of 3 new replicas have been updated...'
    )


def test_old_replicas_pending_termination() -> None:
    status = status_with(status__replicas=3)
    assert status == RolloutStatus(
        False, 'Waiting for deployment "web" rollout to finish: 1 old replicas are pending termination...'
    )


def test_updated_replicas_not_all_available() -> None:
    status = status_with(status__availableReplicas=1)
    assert status == RolloutStatus(
        False, 'Waiting for deployment "web" rollout to finish: 1 of 2 updated replicas are available...'
    )
    assert not status_with(status__availableReplicas=None).done  # absent counts as zero


def test_without_spec_replicas_the_update_check_is_skipped() -> None:
    assert status_with(spec__replicas=None, status__updatedReplicas=2).done
    assert not status_with(spec__replicas=None, status__updatedReplicas=1).done  # 1 old replica pending


def test_scaled_to_zero_is_rolled_out() -> None:
    status = {"observedGeneration": 4, "conditions": []}
    assert rollout_status({**ROLLED_OUT, "spec": {"replicas": 0}, "status": status}).done
