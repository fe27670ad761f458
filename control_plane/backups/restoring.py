"""Applying a restore, inside the reconcile of the workspace it restores into (so under its reconcile lock):

- into a clone: the plan's ``restore`` step (after database and storage, before compute) restores the backup's
  database and files into the new workspace, then renames the restored team (named after the source's slug: the
  workspace server's ``teams.name`` is its team, and a server starts by creating the team it is told of when none
  has that name) to the clone's slug and display name. A restore interrupted midway is applied again from scratch
  (the database is emptied first, the files directory replaced whole). A corrupt part fails the restore for good
  (``failed``, audited) and the clone's step keeps failing with that error rather than starting an empty workspace;
- in place (the reconciler's action for ``restoring``, server stopped): every part is verified whole first, so a
  corrupt backup leaves the data untouched; the workspace then resumes the state it left either way.

Every other reconcile pays one indexed read (:func:`repository.newest_restore_into`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

from control_plane.backups import repository
from control_plane.backups.models import OPEN_RESTORE_STATES, RestoreMode, RestoreState, WorkspaceBackup
from control_plane.backups.service import WORKER_ACTOR, audit_restore, parts_of
from control_plane.core.clock import utcnow
from control_plane.core.db import session_scope
from control_plane.core.faults import fault_pause
from control_plane.providers.base import BackupPart, Ensured, ProviderError, Providers, WorkspaceSpec
from control_plane.providers.data_copy import CorruptPart
from control_plane.reconciler.status import short_error
from control_plane.workspaces.models import Workspace

logger = logging.getLogger(__name__)

RENAME_TEAM = "UPDATE teams SET name = %s, display_name = %s WHERE name = %s AND name <> %s"


@dataclass(frozen=True)
class PendingRestore:
    """A restore to apply now: which, its parts, and the team name the backup holds."""

    restore_id: uuid.UUID
    parts: list[BackupPart]
    source_slug: str


class RestoreFailed(ProviderError):
    """The workspace's restore failed for good (a corrupt or missing part): the message says why."""


def _claim(workspace_id: uuid.UUID, mode: RestoreMode) -> PendingRestore | None:
    """Mark the newest open restore into the workspace running (audited) and return it; None when there is none.
    The newest restore of a clone having failed raises :class:`RestoreFailed`."""
    with session_scope() as session:
        restore = repository.newest_restore_into(session, workspace_id)
        if restore is None or restore.mode is not mode:
            return None
        if restore.state is RestoreState.failed and mode is RestoreMode.clone:
            raise RestoreFailed(f"restore {restore.id} failed: {restore.error}")
        if restore.state not in OPEN_RESTORE_STATES:
            return None
        restore = repository.get_restore(session, restore.id, for_update=True)
        assert restore is not None
        backup = session.get(WorkspaceBackup, restore.backup_id)
        source = session.get(Workspace, restore.source_workspace_id)
        assert backup is not None and source is not None
        restore.state = RestoreState.running
        restore.started_at = utcnow()
        audit_restore(session, restore, WORKER_ACTOR, "start")
        return PendingRestore(restore.id, parts_of(backup), source.slug)


def _finish(restore_id: uuid.UUID, error: str | None) -> None:
    with session_scope() as session:
        restore = repository.get_restore(session, restore_id, for_update=True)
        assert restore is not None
        restore.state = RestoreState.failed if error else RestoreState.completed
        restore.completed_at = utcnow()
        restore.error = error
        audit_restore(session, restore, WORKER_ACTOR, "fail" if error else "complete")


def _rename_team(spec: WorkspaceSpec, providers: Providers, source_slug: str) -> None:
    with psycopg.connect(providers.database.connection_url(spec)) as conn:
        conn.execute(RENAME_TEAM, (spec.slug, spec.display_name[:64], source_slug, spec.slug))


def _apply(
    spec: WorkspaceSpec, providers: Providers, outputs: Mapping[str, Any], pending: PendingRestore, verify: bool
) -> None:
    backup = providers.backup
    if backup is None:
        raise ProviderError("this deployment has no backup provider")
    if verify:
        for part in pending.parts:
            problem = backup.verify(part)
            if problem is not None:
                raise CorruptPart(problem)
    for part in pending.parts:
        if part.name == "database":
            backup.restore_database(spec, outputs, part)
            _rename_team(spec, providers, pending.source_slug)
            fault_pause("restore:database")
        elif part.name == "files":
            backup.restore_files(spec, outputs, part)
        else:
            raise ProviderError(f"unknown backup part {part.name!r}")


def _run(
    spec: WorkspaceSpec, providers: Providers, outputs: Mapping[str, Any], mode: RestoreMode
) -> PendingRestore | None:
    pending = _claim(spec.id, mode)
    if pending is None:
        return None
    try:
        _apply(spec, providers, outputs, pending, verify=mode is RestoreMode.in_place)
    except CorruptPart as exc:
        error = short_error("restore", exc)
        logger.warning("restore %s into workspace %s failed: %s", pending.restore_id, spec.id, error)
        _finish(pending.restore_id, error)
        if mode is RestoreMode.clone:
            raise RestoreFailed(error) from exc
        return pending
    _finish(pending.restore_id, None)
    return pending


def ensure_restored(spec: WorkspaceSpec, providers: Providers, outputs: Mapping[str, Any]) -> Ensured:
    """The clone's restore step: apply its pending restore, if any (other failures are raised for a retry)."""
    return Ensured(created=("restore",)) if _run(spec, providers, outputs, RestoreMode.clone) else Ensured()


def restore_in_place(spec: WorkspaceSpec, providers: Providers, outputs: Mapping[str, Any]) -> bool:
    """Apply the workspace's pending restore in place (its server must be stopped); True if there was one.
    A corrupt backup is recorded on the restore, the data left as it was."""
    return _run(spec, providers, outputs, RestoreMode.in_place) is not None
