"""The app refuses an unmigrated database and names the fix."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest

from control_plane.core.migrate import DatabaseNotMigrated, pending_revision, require_migrated, upgrade


def test_unmigrated_database_is_refused_with_the_fix(create_database: Callable[[str], str]) -> None:
    url = create_database("unmigrated")
    with pytest.raises(DatabaseNotMigrated, match="canopy migrate"):
        require_migrated(url)
    result = subprocess.run(
        [sys.executable, "-m", "control_plane.cli", "api", "--port", "0"],
        env={"CANOPY_DATABASE_URL": url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "canopy migrate" in result.stderr
    upgrade(url)
    assert pending_revision(url) is None
    require_migrated(url)
