"""Node for the JavaScript client tests: the pinned npm packages (``npm ci`` from the committed lock file when
``tests/clients/node_modules`` lacks any of them) and a Node 20+ binary."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).parent


def install_node_packages() -> None:
    """``npm ci`` into tests/clients/node_modules unless every dependency of package.json is already there."""
    dependencies = json.loads((HERE / "package.json").read_text())["dependencies"]
    if all((HERE / "node_modules" / name / "package.json").exists() for name in dependencies):
        return
    npm = shutil.which("npm")
    assert npm is not None, "npm is needed for the JavaScript client tests"
    command = [npm, "ci", "--prefer-offline", "--no-audit", "--no-fund"]
    done = subprocess.run(command, cwd=HERE, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"


def node_binary() -> str:
    """The ``node`` executable, checked to be version 20 or later."""
    node = shutil.which("node")
    assert node is not None, "node (20+) is needed for the JavaScript client tests"
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    assert int(version.lstrip("v").split(".")[0]) >= 20, version
    return node
