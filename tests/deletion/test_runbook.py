"""The runbook "a customer regrets a deletion" (runbooks/deletion-regret.md), command by command, on the local
runtime: find the workspace by its address, cancel its deletion within the grace period (it comes back intact), and
after a purge find it deleted with its final backup listed, and restore that into a new workspace."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import uuid
from typing import Any

import pytest

from control_plane.workspaces.lifecycle import Lifecycle
from tests.deletion.conftest import DeletionPlane, serving
from tests.reconciler.conftest import ROOT

pytestmark = pytest.mark.slow

RUNBOOK = ROOT / "runbooks" / "deletion-regret.md"


def runbook_commands() -> list[str]:
    """The shell commands of the runbook's ``sh`` code blocks, in order."""
    blocks = re.findall(r"```sh\n(.*?)```", RUNBOOK.read_text(), flags=re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def run(deleting: DeletionPlane, command: str, **fill: str) -> subprocess.CompletedProcess[str]:
    """A runbook (or operator) command with its placeholders filled in; ``canopy`` is the control plane's CLI."""
    for name, value in fill.items():
        command = command.replace(f"<{name.replace('_', ' ')}>", value)
    program, *args = shlex.split(command)
    assert program == "canopy", command
    argv = [sys.executable, "-m", "control_plane.cli", *args]
    return subprocess.run(argv, env=deleting.plane.env, cwd=ROOT, capture_output=True, text=True, timeout=300)


def found(deleting: DeletionPlane, command: str, address: str) -> list[dict[str, Any]]:
    shown = run(deleting, command, address=address)
    assert shown.returncode == 0, shown.stderr
    return [json.loads(line) for line in shown.stdout.splitlines()]


def test_the_runbook_cancels_a_regretted_deletion_and_finds_the_final_backup_after_a_purge(
    deleting: DeletionPlane,
) -> None:
    find, cancel, status, list_backups, restore = runbook_commands()
    plane = deleting.plane
    slug = f"sorry-{uuid.uuid4().hex[:6]}"
    address = f"{slug}.localhost"
    ws_id = deleting.workspace(slug)
    driver = deleting.driver(ws_id)
    channel = driver.channels.get_channel_by_name_and_team_name(slug, "town-square")
    post = driver.posts.create_post({"channel_id": channel["id"], "message": "please keep this"})
    assert deleting.call(ws_id, "DELETE").status_code == 202
    deleting.stopped(ws_id)

    # 1. Found by its address: pending deletion, its purge ahead.
    [line] = found(deleting, find, address)
    assert (line["id"], line["lifecycle_state"], line["resume_state"]) == (str(ws_id), "pending_deletion", "trialing")
    assert line["purge_after"] is not None and line["deleted_at"] is None

    # 2. Cancelled: back to its trial, started again with its messages.
    cancelled = run(deleting, cancel, workspace_id=str(ws_id))
    assert cancelled.returncode == 0 and cancelled.stdout.strip() == "trialing", cancelled.stderr
    plane.wait_for(ws_id, serving)
    shown = json.loads(run(deleting, status, workspace_id=str(ws_id)).stdout)
    assert shown["reconcile"]["observed_generation"] == shown["reconcile"]["generation"]
    assert {c["type"]: c["status"] for c in shown["conditions"]}["Available"] == "True"
    driver = deleting.driver(ws_id)
    assert driver.posts.get_post(post["id"])["message"] == "please keep this"

    # Deleted again and purged by an operator: cancelling is refused; once deleted the final backup is listed.
    assert deleting.call(ws_id, "DELETE").status_code == 202
    purged = run(
        deleting, "canopy workspaces purge <workspace id> --reason 'owner asked twice'", workspace_id=str(ws_id)
    )
    assert purged.returncode == 0 and purged.stdout.startswith("pending_deletion"), purged.stderr
    refused = run(deleting, cancel, workspace_id=str(ws_id))
    assert refused.returncode == 1, refused.stdout
    assert "being purged" in refused.stderr or "this one is deleted" in refused.stderr, refused.stderr
    plane.wait_state(ws_id, Lifecycle.deleted, timeout=90)
    [line] = found(deleting, find, address)
    assert (line["lifecycle_state"], line["purge_after"] is not None, line["deleted_at"] is not None) == (
        "deleted",
        True,
        True,
    )
    listed = run(deleting, list_backups, workspace_id=str(ws_id))
    assert listed.returncode == 0, listed.stderr
    final = next(b for b in json.loads(listed.stdout) if b["kind"] == "final")
    assert final["state"] == "completed" and final["keep_until"] is not None

    # 3. Restored into a new workspace: the message is there.
    clone_slug = f"again-{uuid.uuid4().hex[:6]}"
    restored_out = run(deleting, restore, backup_id=final["id"], new_slug=clone_slug)
    assert restored_out.returncode == 0, restored_out.stderr
    clone_id = uuid.UUID(json.loads(restored_out.stdout)["target_workspace_id"])
    plane.workspace_ids.append(clone_id)
    plane.wait_for(clone_id, serving, timeout=120)
    restored = deleting.driver(clone_id, login_slug=slug)
    [team] = restored.teams.get_user_teams("me")
    channel = restored.channels.get_channel_by_name(team["id"], "town-square")
    messages = {p["message"] for p in restored.posts.get_posts_for_channel(channel["id"])["posts"].values()}
    assert "please keep this" in messages
