"""The runbook "move a Professional customer to Enterprise" (runbooks/move-to-enterprise.md), command by command, on
the local runtime: status, schedule, follow until done; and the refusals the runbook names."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import uuid
from typing import Any

from tests.moves.conftest import MovePlane
from tests.reconciler.conftest import ROOT
from tests.waiting import wait_until

RUNBOOK = ROOT / "runbooks" / "move-to-enterprise.md"


def runbook_commands() -> list[str]:
    """The shell commands of the runbook's code blocks, in order."""
    blocks = re.findall(r"```sh\n(.*?)```", RUNBOOK.read_text(), flags=re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def run(moving: MovePlane, command: str, **values: str) -> subprocess.CompletedProcess[str]:
    """A runbook command with its placeholders filled in (``canopy`` is the control plane's CLI)."""
    for name, value in values.items():
        command = command.replace(f"<{name.replace('_', ' ')}>", value)
    program, *args = shlex.split(command)
    assert program == "canopy" and "<" not in command, command
    argv = [sys.executable, "-m", "control_plane.cli", *args]
    return subprocess.run(argv, env=moving.plane.env, cwd=ROOT, capture_output=True, text=True, timeout=300)


def shown(moving: MovePlane, command: str, **values: str) -> Any:
    done = run(moving, command, **values)
    assert done.returncode == 0, f"{command}\n{done.stderr}\n{moving.plane.worker_logs()}"
    return json.loads(done.stdout)


def test_the_runbook_refuses_what_it_says(moving: MovePlane) -> None:
    _, scheduling, following = runbook_commands()
    workspace_id = moving.plane.create_workspace(f"rbno-{uuid.uuid4().hex[:6]}")
    ids = {"organization_id": str(moving.organization_of(workspace_id)), "workspace_id": str(workspace_id)}

    refused = run(moving, scheduling, **ids, start="now", minutes="30")
    assert refused.returncode == 1 and "contract-required" in refused.stderr, refused.stderr
    assert run(moving, following, **ids).returncode == 1  # no move yet
    for start, minutes in (("now", "2"), ("2026-12-24T22:00:00", "30"), ("tomorrow", "30")):
        assert run(moving, scheduling, **ids, start=start, minutes=minutes).returncode == 2


def test_the_runbook_moves_a_workspace(moving: MovePlane) -> None:
    status, scheduling, following = runbook_commands()
    slug = f"rb-{uuid.uuid4().hex[:6]}"
    workspace_id = moving.workspace(slug)
    organization_id = moving.organization_of(workspace_id)
    moving.sign_contract(organization_id)
    ids = {"organization_id": str(organization_id), "workspace_id": str(workspace_id)}

    assert shown(moving, status, **ids)["tier"] == "professional"
    move = shown(moving, scheduling, **ids, start="now", minutes="30")
    assert (move["state"], move["slug"], move["requested_by"]) == ("scheduled", slug, "cli")
    found: dict[str, Any] = {}

    def ended() -> bool:
        found.update(shown(moving, following, **ids))
        return found["state"] in ("done", "failed")

    wait_until(lambda: f"move {found}\n{moving.plane.worker_logs()}", ended, 300)
    assert found["state"] == "done", found
    target_id = found["target_workspace_id"]
    moving.plane.workspace_ids.append(uuid.UUID(target_id))
    target = shown(moving, status, workspace_id=target_id, organization_id=str(organization_id))
    assert (target["tier"], target["slug"], target["lifecycle_state"]) == ("enterprise", slug, "active")
