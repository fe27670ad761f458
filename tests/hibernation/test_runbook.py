"""The runbook "a hibernated workspace does not wake" (runbooks/hibernation-does-not-wake.md), command by command, on
the local runtime: with no worker running, a request wakes the row but nothing starts the server, so it answers
503 with Retry-After after the wake timeout; the status command shows why (woken, not reconciled, a reconcile
waiting, no worker); a worker brings it up; a hibernated workspace is woken by hand into its own state."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import uuid
from typing import Any

import httpx
import pytest

from control_plane.workspaces.lifecycle import Lifecycle
from tests.hibernation.conftest import Sleepy, runbook_commands, serving
from tests.reconciler.conftest import ROOT

pytestmark = pytest.mark.slow


def run(command: str, env: dict[str, str], workspace_id: uuid.UUID) -> subprocess.CompletedProcess[str]:
    """A runbook command with the workspace's id filled in; ``canopy`` is the control plane's CLI."""
    program, *args = shlex.split(command.replace("<workspace id>", str(workspace_id)))
    assert program == "canopy", command
    argv = [sys.executable, "-m", "control_plane.cli", *args]
    return subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)


def status(sleepy: Sleepy, command: str, workspace_id: uuid.UUID) -> dict[str, Any]:
    shown = run(command, sleepy.plane.env, workspace_id)
    assert shown.returncode == 0, shown.stderr
    parsed: dict[str, Any] = json.loads(shown.stdout)
    return parsed


def test_the_runbook_finds_the_missing_worker_and_wakes_by_hand(sleepy: Sleepy) -> None:
    status_command, wake_command = [c for c in runbook_commands() if c.startswith("canopy ")]
    slug = f"runbook-{uuid.uuid4().hex[:6]}"
    sleepy.plane.start_worker()
    [workspace_id] = sleepy.provision([slug])
    sleepy.hibernate(workspace_id)
    sleepy.plane.stop_workers()
    impatient = sleepy.start_api(CANOPY_WAKE_TIMEOUT_SECONDS="2")

    # Recognise it: 503 with Retry-After once the wake timeout has passed.
    refused = httpx.get(f"{impatient.address(slug)}/api/v4/system/ping", timeout=60)
    assert refused.status_code == 503 and refused.headers["retry-after"] == "5", refused.text
    assert refused.json()["type"].endswith("/workspace-waking")

    # 1. Woken by the request (into the state it was hibernated from), not reconciled, a reconcile waiting, no worker.
    shown = status(sleepy, status_command, workspace_id)
    assert (shown["lifecycle_state"], shown["resume_state"]) == ("trialing", None)
    assert shown["reconcile"]["observed_generation"] < shown["reconcile"]["generation"]
    assert shown["queue"] == {"waiting": 1, "running": 0, "workers": 0}
    # ... so start a worker: it takes the waiting reconcile; the next request is answered.
    sleepy.plane.start_worker()
    sleepy.plane.wait_for(workspace_id, serving)
    assert httpx.get(f"{impatient.address(slug)}/api/v4/system/ping", timeout=60).status_code == 200
    shown = status(sleepy, status_command, workspace_id)
    assert shown["reconcile"]["observed_generation"] == shown["reconcile"]["generation"]
    assert shown["queue"]["workers"] == 1

    # 2. Hibernated and no request reaches it: wake it by hand, into the state it was hibernated from.
    sleepy.hibernate(workspace_id)
    assert status(sleepy, status_command, workspace_id)["resume_state"] == "trialing"
    woken = run(wake_command, sleepy.plane.env, workspace_id)
    assert woken.returncode == 0 and woken.stdout.strip() == "trialing", woken.stderr
    sleepy.plane.wait_for(workspace_id, serving)
    assert sleepy.plane.row(workspace_id).lifecycle_state == Lifecycle.trialing
    assert httpx.get(f"{sleepy.api.address(slug)}/api/v4/system/ping", timeout=60).status_code == 200
    awake = run(wake_command, sleepy.plane.env, workspace_id)
    assert awake.returncode == 1 and "Only a hibernated workspace can be woken" in awake.stderr
