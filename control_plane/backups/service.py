"""Workspace backups: request one, take it (a worker, or synchronously for a final backup), read them; request a
restore into a clone or in place.

A backup copies the database first and the files after (:class:`~control_plane.providers.base.BackupProvider`):
files are only ever added while the server runs, so every file a dumped post names is in the copy (a file uploaded
between the two copies is in it too, unreferenced). The posts count is taken in the dump's own snapshot. A backup's
``sha256`` is the digest over its parts' digests in order; its parts (``BackupPart`` as JSON) are the provider's.

Backup jobs take the workspace's reconcile lock (:func:`control_plane.reconciler.queue.workspace_lock`), so a
backup never runs beside a reconcile of the same workspace, which is where restores run (see :mod:`.restoring`).
A worker that dies mid-backup leaves the row ``running``; procrastinate's stalled-job recovery runs the job again,
which takes the backup again from the start (the parts are rewritten under the same names).
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg.errors import UniqueViolation
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from control_plane.accounts.models import Account
from control_plane.audit import service as audit
from control_plane.backups import repository
from control_plane.backups.models import (
    OPEN_BACKUP_STATES,
    BackupKind,
    BackupState,
    RestoreMode,
    RestoreState,
    WorkspaceBackup,
    WorkspaceRestore,
)
from control_plane.backups.schemas import CloneRestore, InPlaceRestore
from control_plane.core.authz import Permission, Principal
from control_plane.core.clock import utcnow
from control_plane.core.db import session_scope
from control_plane.core.problems import Conflict, NotFound
from control_plane.core.settings import get_settings
from control_plane.providers.base import BackupPart, BackupProvider, ProviderError
from control_plane.providers.factory import get_providers
from control_plane.reconciler import records
from control_plane.reconciler.status import short_error
from control_plane.workspaces import service as workspaces
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Tier, Workspace

logger = logging.getLogger(__name__)

BACKUP_STATES = frozenset(
    {
        Lifecycle.trialing,
        Lifecycle.active,
        Lifecycle.past_due,
        Lifecycle.suspended,
        Lifecycle.hibernated,
        Lifecycle.pending_deletion,
    }
)
"""States of a workspace that has data to back up."""
MAX_LIST = 100
WORKER_ACTOR = "worker"


@dataclass(frozen=True)
class BackupOutcome:
    """How a backup taken synchronously ended."""

    backup_id: uuid.UUID
    state: BackupState
    error: str | None
    keep_until: datetime | None


def snapshot(backup: WorkspaceBackup) -> dict[str, Any]:
    """The audited fields of a backup."""
    return {
        "workspace_id": str(backup.workspace_id),
        "kind": backup.kind.value,
        "state": backup.state.value,
        "size_bytes": backup.size_bytes,
        "sha256": backup.sha256,
        "posts": backup.posts,
        "files": backup.files,
        "keep_until": backup.keep_until.isoformat() if backup.keep_until else None,
        "error": backup.error,
    }


def restore_snapshot(restore: WorkspaceRestore) -> dict[str, Any]:
    """The audited fields of a restore."""
    return {
        "backup_id": str(restore.backup_id),
        "source_workspace_id": str(restore.source_workspace_id),
        "target_workspace_id": str(restore.target_workspace_id),
        "mode": restore.mode.value,
        "state": restore.state.value,
        "error": restore.error,
    }


def audit_backup(session: Session, backup: WorkspaceBackup, actor: str, action: str) -> None:
    audit.record(
        session,
        actor=actor,
        action=f"workspace_backup.{action}",
        target_type="workspace_backup",
        target_id=backup.id,
        organization_id=backup.organization_id,
        after=snapshot(backup),
    )


def audit_restore(session: Session, restore: WorkspaceRestore, actor: str, action: str) -> None:
    audit.record(
        session,
        actor=actor,
        action=f"workspace_restore.{action}",
        target_type="workspace_restore",
        target_id=restore.id,
        organization_id=restore.organization_id,
        after=restore_snapshot(restore),
    )


def backup_provider(tier: str) -> BackupProvider:
    """This deployment's backup provider for ``tier``."""
    provider = get_providers(get_settings(), tier).backup
    if provider is None:
        raise ProviderError("this deployment has no backup provider")
    return provider


def parts_of(backup: WorkspaceBackup) -> list[BackupPart]:
    """The backup's parts, as the provider made them."""
    return [BackupPart(**part) for part in backup.parts or []]


# --- requests and reads ------------------------------------------------------------------------------------------


def request_backup(
    session: Session, ws: Workspace, kind: BackupKind, actor: str, keep_until: datetime | None = None
) -> WorkspaceBackup:
    """Queue a backup of ``ws`` (added and audited, not committed; the caller defers :func:`tasks.defer_backup`
    after committing): 409 unless the workspace has data, or (but for a final backup) while another backup of it is
    queued or running."""
    if ws.lifecycle_state not in BACKUP_STATES:
        raise Conflict(
            "workspace-has-no-data", f"The workspace is {ws.lifecycle_state.value}: there is no data to back up"
        )
    current = repository.open_of(session, ws.id) if kind is not BackupKind.final else None
    if current is not None:
        raise Conflict(
            "backup-in-progress", "A backup of this workspace is already queued or running", backup_id=str(current.id)
        )
    backup = WorkspaceBackup(
        workspace_id=ws.id,
        organization_id=ws.organization_id,
        kind=kind,
        state=BackupState.queued,
        requested_by=actor,
        parts=[],
        keep_until=keep_until,
        created_at=utcnow(),
    )
    session.add(backup)
    session.flush()
    audit_backup(session, backup, actor, "create")
    return backup


def request(session: Session, principal: Principal, workspace_id: uuid.UUID) -> WorkspaceBackup:
    """A manual :func:`request_backup` for a caller who may see the workspace (another organization's is a 404)."""
    ws = workspaces.visible(session, principal, workspace_id, for_update=True)
    return request_backup(session, ws, BackupKind.manual, principal.actor)


def visible(session: Session, principal: Principal, workspace_id: uuid.UUID, backup_id: uuid.UUID) -> WorkspaceBackup:
    """A backup of a workspace the caller may see; anything else is a 404."""
    workspaces.visible(session, principal, workspace_id)
    backup = repository.get(session, backup_id)
    if backup is None or backup.workspace_id != workspace_id:
        raise NotFound("Backup")
    return backup


def of_workspace(session: Session, principal: Principal, workspace_id: uuid.UUID, limit: int) -> list[WorkspaceBackup]:
    """The newest backups of a workspace the caller may see."""
    workspaces.visible(session, principal, workspace_id)
    return repository.newest_of(session, workspace_id, max(1, min(limit, MAX_LIST)))


def newest_restore(
    session: Session, principal: Principal, workspace_id: uuid.UUID, backup_id: uuid.UUID
) -> WorkspaceRestore:
    """The newest restore of a visible backup; 404 if it was never restored."""
    backup = visible(session, principal, workspace_id, backup_id)
    restore = repository.newest_restore_of(session, backup.id)
    if restore is None:
        raise NotFound("Restore")
    return restore


def start_restore(
    session: Session,
    ws: Workspace,
    backup: WorkspaceBackup,
    body: CloneRestore | InPlaceRestore,
    actor: str,
    initial_admin: tuple[str, str] | None,
    tier: Tier | None = None,
    region: str | None = None,
) -> WorkspaceRestore:
    """Restore a completed backup of ``ws`` (locked by the caller; added and audited, not committed; the caller
    defers the target's reconcile):

    - clone: a new workspace of the same organization at ``body.slug``, ``provisioning``, of ``ws``'s tier and
      region unless ``tier``/``region`` say otherwise (a move to Enterprise), with ``initial_admin`` (email,
      password hash) as workspace creation has it; its reconcile restores the backup into it before its server
      first starts;
    - in place: 409 unless ``body.confirm`` is the workspace's slug; the workspace goes ``restoring`` (its server
      stops, requests get 503 with ``Retry-After``) and comes back in the state it left, with the backup's content.
    """
    if backup.state is not BackupState.completed:
        raise Conflict("backup-not-restorable", f"The backup is {backup.state.value}: only a completed one restores")
    if isinstance(body, InPlaceRestore):
        if body.confirm != ws.slug:
            raise Conflict(
                "confirmation-mismatch", "Type the workspace's address (its slug) to confirm", field="confirm"
            )
        if repository.open_restore_into(session, ws.id) is not None:
            raise Conflict("restore-in-progress", "A restore into this workspace is already under way")
        workspaces.transition(session, ws, Lifecycle.restoring, actor, action="workspace.restore")
        target = ws
    else:
        try:
            with session.begin_nested():  # a slug taken by a concurrent request since it was checked is a 409
                target = workspaces.new_workspace(
                    session,
                    organization_id=ws.organization_id,
                    slug=body.slug,
                    display_name=body.display_name or ws.display_name,
                    tier=tier or ws.tier,
                    region=region or ws.region,
                    state=Lifecycle.provisioning,
                    actor=actor,
                    initial_admin=initial_admin,
                )
        except IntegrityError as exc:
            if not isinstance(exc.orig, UniqueViolation):
                raise
            raise Conflict("slug-taken", "This address was just taken", field="slug") from None
    restore = WorkspaceRestore(
        backup_id=backup.id,
        organization_id=ws.organization_id,
        source_workspace_id=ws.id,
        target_workspace_id=target.id,
        mode=RestoreMode.in_place if isinstance(body, InPlaceRestore) else RestoreMode.clone,
        state=RestoreState.queued,
        requested_by=actor,
    )
    session.add(restore)
    session.flush()
    audit_restore(session, restore, actor, "create")
    return restore


def request_restore(
    session: Session,
    principal: Principal,
    workspace_id: uuid.UUID,
    backup_id: uuid.UUID,
    body: CloneRestore | InPlaceRestore,
) -> WorkspaceRestore:
    """:func:`start_restore` for a caller who may see the backup; committed. A clone's initial admin is the caller
    when they are of the organization; staff never hold an account inside a customer's workspace, so a clone they
    restore has the backup's users only. A clone of an Enterprise workspace is a new silo: only the roles that may
    create Enterprise workspaces (sales, admins) restore one (403 otherwise)."""
    ws = workspaces.visible(session, principal, workspace_id, for_update=True)
    backup = visible(session, principal, workspace_id, backup_id)
    if isinstance(body, CloneRestore) and ws.tier == Tier.enterprise:
        principal.require(Permission.create_enterprise_workspace)
    account = session.get(Account, principal.account_id)
    assert account is not None
    admin = None if principal.is_staff else (account.email, account.password_hash)
    restore = start_restore(session, ws, backup, body, principal.actor, admin)
    session.commit()
    return restore


# --- taking a backup ---------------------------------------------------------------------------------------------


def _digest(parts: list[BackupPart]) -> str:
    """SHA-256 over the parts' names and digests, in order."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(f"{part.name}:{part.size}:{part.sha256 or '-'}\n".encode())
    return digest.hexdigest()


def _take(provider: BackupProvider, snap: records.Snapshot, backup_id: uuid.UUID) -> list[BackupPart]:
    """Database first, then files (see the module's docstring); a failure discards what was made."""
    made: list[BackupPart] = []
    try:
        made.append(provider.back_up_database(snap.spec, snap.outputs, backup_id))
        made.append(provider.back_up_files(snap.spec, snap.outputs, backup_id))
    except BaseException:
        for part in made:
            provider.discard(part)
        raise
    return made


def _finish(backup_id: uuid.UUID, parts: list[BackupPart], error: str | None, seconds: float) -> BackupOutcome:
    with session_scope() as session:
        backup = repository.get(session, backup_id, for_update=True)
        assert backup is not None
        backup.completed_at = utcnow()
        backup.duration_seconds = round(seconds, 3)
        backup.state = BackupState.failed if error else BackupState.completed
        backup.error = error
        if not error:
            backup.parts = [asdict(part) for part in parts]
            backup.size_bytes = sum(part.size for part in parts)
            backup.sha256 = _digest(parts)
            counts = {part.name: part.count for part in parts}
            backup.posts, backup.files = counts.get("database"), counts.get("files")
        audit_backup(session, backup, WORKER_ACTOR, "fail" if error else "complete")
        return BackupOutcome(backup.id, backup.state, backup.error, backup.keep_until)


def run(backup_id: uuid.UUID) -> BackupOutcome | None:
    """Take a queued (or interrupted) backup; None when there is none to take. Failures are recorded on the row
    (``failed`` with the error, audited), never raised."""
    with session_scope() as session:
        backup = repository.get(session, backup_id, for_update=True)
        if backup is None or backup.state not in OPEN_BACKUP_STATES:
            return None
        ws = session.get(Workspace, backup.workspace_id)
        assert ws is not None
        backup.state = BackupState.running
        backup.started_at = utcnow()
        workspace_id, state = ws.id, ws.lifecycle_state
    started = time.monotonic()
    snap = records.load(workspace_id)
    if snap is None or state not in BACKUP_STATES:
        return _finish(backup_id, [], f"backup: the workspace is {state.value}, it has no data to back up", 0.0)
    try:
        parts = _take(backup_provider(snap.spec.tier), snap, backup_id)
    except Exception as exc:
        error = short_error("backup", exc)
        logger.warning("backup %s of workspace %s failed: %s", backup_id, snap.spec.id, error)
        return _finish(backup_id, [], error, time.monotonic() - started)
    return _finish(backup_id, parts, None, time.monotonic() - started)


def ensure_final_backup(workspace_id: uuid.UUID, since: datetime | None = None) -> BackupOutcome:
    """The workspace's completed final backup (kept 90 days), taken now if it has none (none started at ``since``
    or later: a deletion that was cancelled and requested again needs a new one): synchronous, for the deletion
    reconcile before teardown. Idempotent: a completed one is returned as is, an interrupted one is taken again; a
    failed outcome is returned (the caller retries later, which takes a new one)."""
    with session_scope() as session:
        done = repository.final_of(session, workspace_id, frozenset({BackupState.completed}), since)
        if done is not None:
            return BackupOutcome(done.id, done.state, None, done.keep_until)
        backup = repository.final_of(session, workspace_id, OPEN_BACKUP_STATES)
        if backup is None:
            ws = session.get(Workspace, workspace_id, with_for_update=True)
            if ws is None:
                raise LookupError(f"workspace {workspace_id} disappeared")
            keep = timedelta(days=get_settings().backup_keep_final_days)
            backup = request_backup(session, ws, BackupKind.final, WORKER_ACTOR, keep_until=utcnow() + keep)
        backup_id = backup.id
    outcome = run(backup_id)
    assert outcome is not None
    return outcome
