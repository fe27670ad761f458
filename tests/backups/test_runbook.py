"""The runbook "restore a workspace" (runbooks/restore-a-workspace.md), command by command, on the local runtime:
list, back up, restore into a clone, restore in place, show; the clone and the workspace end with the backup's
posts."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import uuid
from typing import Any

from tests.backups.conftest import BackupPlane
from tests.reconciler.conftest import ROOT

RUNBOOK = ROOT / "runbooks" / "restore-a-workspace.md"


def runbook_commands() -> list[str]:
    """The shell commands of the runbook's code blocks, in order."""
    blocks = re.findall(r"```sh\n(.*?)```", RUNBOOK.read_text(), flags=re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def run(backing: BackupPlane, command: str, **values: str) -> Any:
    """A runbook command with its placeholders filled in (``canopy`` is the control plane's CLI); its JSON."""
    for name, value in values.items():
        command = command.replace(f"<{name.replace('_', ' ')}>", value)
    program, *args = shlex.split(command)
    assert program == "canopy" and "<" not in command, command
    argv = [sys.executable, "-m", "control_plane.cli", *args]
    done = subprocess.run(argv, env=backing.plane.env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{command}\n{done.stderr}\n{backing.plane.worker_logs()}"
    return json.loads(done.stdout)


def _messages(backing: BackupPlane, workspace_id: uuid.UUID, login: str, slug: str) -> list[str]:
    driver = backing.driver(workspace_id, login)
    channel = driver.channels.get_channel_by_name_and_team_name(slug, "town-square")
    page = driver.posts.get_posts_for_channel(channel["id"], params={"per_page": 200})
    return sorted(post["message"] for post in page["posts"].values())


def test_the_runbook_restores_into_a_clone_and_in_place(backing: BackupPlane) -> None:
    listing, creating, cloning, in_place, showing = runbook_commands()
    slug = f"rb-{uuid.uuid4().hex[:6]}"
    login = f"{slug}.admin@example.com"
    workspace_id = backing.workspace(slug)
    driver = backing.driver(workspace_id, login)
    town = driver.channels.get_channel_by_name_and_team_name(slug, "town-square")
    for index in range(5):
        driver.posts.create_post({"channel_id": town["id"], "message": f"kept {index}"})
    ids = {"workspace_id": str(workspace_id), "slug": slug}

    assert run(backing, listing, **ids) == []
    backup = run(backing, creating, **ids)
    assert backup["state"] == "completed" and backup["posts"] >= 5
    assert [b["id"] for b in run(backing, listing, **ids)] == [backup["id"]]
    kept = _messages(backing, workspace_id, login, slug)
    driver.posts.create_post({"channel_id": town["id"], "message": "lost"})

    clone_slug = f"rbc-{uuid.uuid4().hex[:6]}"
    restore = run(backing, cloning, backup_id=backup["id"], new_slug=clone_slug)
    clone_id = uuid.UUID(restore["target_workspace_id"])
    backing.plane.workspace_ids.append(clone_id)
    assert restore["state"] == "completed", restore
    backing.serving(clone_id)
    assert _messages(backing, clone_id, login, clone_slug) == kept

    restore = run(backing, in_place, backup_id=backup["id"], **ids)
    assert restore["state"] == "completed" and restore["mode"] == "in_place", restore
    backing.serving(workspace_id)
    assert _messages(backing, workspace_id, login, slug) == kept

    shown = run(backing, showing, backup_id=backup["id"])
    assert shown["restore"]["id"] == restore["id"] and shown["restore"]["state"] == "completed"
