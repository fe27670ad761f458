"""Another release of the workspace server for tests: a copy of this one's package that says another version."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from workspace_server.release import RELEASE_VERSION

ROOT = Path(__file__).resolve().parents[2]


def build_release(where: Path, version: str) -> list[str]:
    """Copy ``workspace_server`` under ``where`` with ``RELEASE_VERSION`` = ``version``; returns the argv that runs the
    copy (what a release's ``local_command`` holds)."""
    copy = where / f"workspace-server-{version}"
    shutil.copytree(ROOT / "workspace_server", copy / "workspace_server", ignore=shutil.ignore_patterns("__pycache__"))
    release = copy / "workspace_server" / "release.py"
    source = release.read_text()
    current = f'RELEASE_VERSION: Final = "{RELEASE_VERSION}"'
    assert current in source
    release.write_text(source.replace(current, f'RELEASE_VERSION: Final = "{version}"'))
    return ["/usr/bin/env", f"PYTHONPATH={copy}", sys.executable, "-m", "workspace_server"]
