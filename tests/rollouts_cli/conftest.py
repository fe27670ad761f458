"""The release and rollout runbooks' commands, run as written (``canopy ...`` in a process of its own) against a
migrated control-plane database of each test's own, with active workspaces in it."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import configured_control_plane
from tests.reconciler.conftest import ROOT

VERSION = "0.2.0"


def runbook_commands(name: str) -> list[str]:
    """The shell commands of a runbook's ``sh`` code blocks, in order."""
    text = (ROOT / "runbooks" / name).read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


@dataclass
class Console:
    """An operator's console on one control plane: runs ``canopy`` commands, adds workspaces."""

    env: dict[str, str]

    def run(self, command: str, **fill: str) -> subprocess.CompletedProcess[str]:
        """A command with its ``<placeholders>`` filled in (``workspace_id`` fills ``<workspace id>``)."""
        for name, value in fill.items():
            command = command.replace(f"<{name.replace('_', ' ')}>", value)
        assert "<" not in command, command
        program, *args = shlex.split(command)
        assert program == "canopy", command
        argv = [sys.executable, "-m", "control_plane.cli", *args]
        return subprocess.run(argv, env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=120)

    def json(self, command: str, **fill: str) -> Any:
        """A command that must succeed; its JSON output."""
        done = self.run(command, **fill)
        assert done.returncode == 0, (command, done.stderr)
        return json.loads(done.stdout)

    def refused(self, command: str, **fill: str) -> dict[str, Any]:
        """A command that must be refused (exit 1); its problem document."""
        done = self.run(command, **fill)
        assert done.returncode == 1, (command, done.stdout, done.stderr)
        return dict(json.loads(done.stderr.strip().splitlines()[-1]))

    def workspaces(self, count: int, tier: str = "professional") -> list[uuid.UUID]:
        """``count`` active workspaces of a new organization on the bundled release (rows: no server behind them)."""
        from control_plane.core.db import session_scope
        from control_plane.organizations.models import Organization
        from control_plane.workspaces.lifecycle import Lifecycle
        from control_plane.workspaces.models import Tier, Workspace

        with session_scope() as session:
            org = Organization(name=f"org {uuid.uuid4().hex[:6]}")
            session.add(org)
            session.flush()
            rows = [
                Workspace(
                    organization_id=org.id,
                    slug=f"w{uuid.uuid4().hex[:12]}",
                    display_name="w",
                    tier=Tier(tier),
                    region="local",
                    desired_release="0.1.0",
                    observed_release="0.1.0",
                    lifecycle_state=Lifecycle.active,
                    conditions=[],
                    outputs={},
                )
                for _ in range(count)
            ]
            session.add_all(rows)
            session.commit()
            return [ws.id for ws in rows]

    def workspace(self, workspace_id: uuid.UUID) -> Any:
        """The workspace as ``canopy workspaces status`` shows it."""
        return self.json("canopy workspaces status <workspace id>", workspace_id=str(workspace_id))

    def published(self, version: str = VERSION) -> None:
        """``version`` published and promoted (start-a-rollout.md's first step)."""
        publish, promote = runbook_commands("start-a-rollout.md")[:2]
        self.json(publish, version=version, image=f"canopy/ws:{version}", schema="1", notes="test release")
        self.json(promote, version=version)


@pytest.fixture
def console(create_database: Callable[[str], str]) -> Iterator[Console]:
    """A migrated control plane of the test's own, with the bundled release in its catalogue."""
    from control_plane.core.db import session_scope
    from control_plane.core.settings import get_settings
    from control_plane.releases.service import ensure_bundled

    with configured_control_plane(create_database("runbooks"), CANOPY_DEV_MODE="true"):
        with session_scope() as session:
            ensure_bundled(session, get_settings())
            session.commit()
        yield Console(dict(os.environ))
