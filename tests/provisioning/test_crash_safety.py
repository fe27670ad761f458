"""A worker SIGKILLed right after any provisioning step: a fresh worker converges the workspace (through
stalled-job recovery), and nothing is created twice or left over: counted by tag in moto, by label in Kubernetes,
and by the reconciler's own creation counters.
"""

from __future__ import annotations

import signal
import time
import uuid

import pytest

from control_plane.kube.client import KubeClient
from control_plane.reconciler.plans import ENTERPRISE, PROFESSIONAL
from control_plane.reconciler.queue import Cause, defer_reconcile
from control_plane.reconciler.steps import Step
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Tier
from tests.provisioning.conftest import aws_resources, kube_objects, new_workspace
from tests.provisioning.test_end_to_end import EXPECTED_AWS, EXPECTED_KUBE
from tests.reconciler.conftest import Plane
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

CASES = [(Tier.professional, step) for step in PROFESSIONAL] + [(Tier.enterprise, step) for step in ENTERPRISE]
READY = {Tier.professional: Lifecycle.trialing, Tier.enterprise: Lifecycle.active}


def paused_after(plane: Plane, step: Step) -> bool:
    """Whether the doomed worker has done ``step`` and recorded it: it pauses right after (a step such as ``plan``
    leaves no condition or count on the row to watch)."""
    return f"pausing after {step.name}" in plane.worker_logs()


@pytest.mark.parametrize(("tier", "step"), CASES, ids=[f"{tier.value}-{step.name}" for tier, step in CASES])
def test_a_worker_killed_after_a_step_leaves_nothing_doubled(
    plane: Plane, kube: KubeClient, tier: Tier, step: Step
) -> None:
    ws_id = new_workspace(plane, f"c{uuid.uuid4().hex[:8]}", tier)
    doomed = plane.start_worker(concurrency=1, CANOPY_FAULT_PAUSE_AFTER_STEP=step.name)
    defer_reconcile(ws_id, Cause.signup)
    wait_until(lambda: f"the pause after {step.name}\n{plane.worker_logs()}", lambda: paused_after(plane, step), 60)
    assert plane.row(ws_id).lifecycle_state == Lifecycle.provisioning

    plane.start_worker()  # started early (the paused job's lock keeps it off this workspace until recovery)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    killed = time.monotonic()
    try:
        ws = plane.wait_state(ws_id, READY[tier], timeout=60)
        print(f"{tier.value} killed after {step.name}: converged {time.monotonic() - killed:.1f}s after the kill")
        assert set(ws.outputs["created"].values()) == {1}, ws.outputs["created"]
        assert aws_resources(ws_id) == EXPECTED_AWS[tier]
        assert kube_objects(kube, ws_id) == EXPECTED_KUBE[tier]
        assert ws.initial_admin_password_hash is None
    finally:
        plane.stop_workers()
        # Retired by hibernation (no resync converges it; its resources stay): the next case's doomed worker must
        # not pause in a resync of this one.
        plane.as_operator("POST", f"/api/v1/workspaces/{ws_id}/hibernate")
