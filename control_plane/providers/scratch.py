"""A scratch database for a restore drill where the control plane can read the restored database: one the database
provider makes for a synthetic spec (with the throwaway password it was built with), restored into, and torn down
whatever happened (the local runtime's and a pooled cell's)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from control_plane.providers.base import BackupPart, DatabaseProvider, ScratchDatabase, WorkspaceSpec

Restore = Callable[[WorkspaceSpec, Mapping[str, Any], BackupPart], None]


@contextlib.contextmanager
def scratch_database(
    database: DatabaseProvider, restore: Restore, scratch: WorkspaceSpec, part: BackupPart
) -> Iterator[ScratchDatabase]:
    """``database``'s database for ``scratch``, ensured, the part restored into it by ``restore``; torn down on
    exit."""
    try:
        outputs = database.ensure(scratch).outputs
        restore(scratch, outputs, part)
        yield ScratchDatabase(str(outputs.get("database_name") or scratch.slug), database.connection_url(scratch))
    finally:
        database.teardown(scratch)
