"""Scheduled backups and retention per tier.

- Every workspace with data gets a ``scheduled`` backup once per ``backup_schedule_seconds`` (daily by default). A
  workspace's first one comes at an offset into its first period drawn from its id, so the fleet's backups spread
  over the period instead of all starting at once; each next one a period after the previous.
- Retention: a Professional keeps its newest ``backup_keep_professional_daily`` daily backups (a day's newest
  scheduled one); an Enterprise its newest ``backup_keep_enterprise_daily`` daily ones plus a month's newest for its
  newest ``backup_keep_enterprise_monthly`` months; a ``manual`` backup is kept ``backup_keep_manual_days``, a
  ``final`` one (taken before a deletion's teardown) ``backup_keep_final_days``. An expired backup's parts are
  discarded through the provider and the backup marked ``expired``, audited.

Times are on the deployment's clock (:func:`control_plane.core.clock.utcnow`), which dev-mode tests move forward.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from control_plane.backups import service as backups
from control_plane.backups.models import BackupKind, BackupState, WorkspaceBackup
from control_plane.backups.tasks import defer_backup
from control_plane.core.clock import utcnow
from control_plane.core.db import session_scope
from control_plane.core.problems import Problem
from control_plane.core.settings import Settings
from control_plane.workspaces.models import Workspace
from infra.conventions import TIER_ENTERPRISE

logger = logging.getLogger(__name__)

SCHEDULER: Final = "scheduler"
RETENTION: Final = "retention"


def check_seconds(period: float) -> float:
    """How often to look for due workspaces: a 24th of the period, between 1 s and an hour."""
    return max(1.0, min(3600.0, period / 24))


def first_offset(workspace_id: uuid.UUID, period: float) -> timedelta:
    """Where in its first period a workspace's first scheduled backup falls (stable, spread by its id)."""
    fraction = int.from_bytes(hashlib.sha256(workspace_id.bytes).digest()[:8], "big") / 2**64
    return timedelta(seconds=fraction * period)


def is_due(first: datetime, last: datetime | None, now: datetime, period: float) -> bool:
    """Whether a workspace whose first scheduled backup falls at ``first`` and whose newest one was at ``last`` is
    due one now (a check's worth early counts: checks do not land exactly a period apart)."""
    if last is None:
        return now >= first
    return now - last >= timedelta(seconds=period - check_seconds(period))


def due_workspaces(session: Session, settings: Settings) -> list[uuid.UUID]:
    """Workspaces with data whose scheduled backup is due."""
    period = float(settings.backup_schedule_seconds)
    now = utcnow()
    newest = (
        select(WorkspaceBackup.workspace_id, func.max(WorkspaceBackup.created_at).label("last"))
        .where(WorkspaceBackup.kind == BackupKind.scheduled)
        .group_by(WorkspaceBackup.workspace_id)
        .subquery()
    )
    rows = session.execute(
        select(Workspace.id, Workspace.created_at, newest.c.last)
        .outerjoin(newest, newest.c.workspace_id == Workspace.id)
        .where(Workspace.lifecycle_state.in_(backups.BACKUP_STATES))
    ).all()
    due = []
    for workspace_id, created_at, last in rows:
        if is_due(created_at + first_offset(workspace_id, period), last, now, period):
            due.append(workspace_id)
    return due


def request_scheduled(settings: Settings) -> list[uuid.UUID]:
    """Request a scheduled backup of every due workspace (each in its own transaction, its job deferred once
    committed); returns the backups' ids."""
    with session_scope() as session:
        due = due_workspaces(session, settings)
    requested = []
    for workspace_id in due:
        with session_scope() as session:
            ws = session.get(Workspace, workspace_id, with_for_update=True)
            if ws is None:
                continue
            try:
                backup = backups.request_backup(session, ws, BackupKind.scheduled, SCHEDULER)
            except Problem as exc:  # one already running, or the workspace changed state meanwhile
                logger.info("scheduled backup of %s not requested: %s", workspace_id, exc.detail)
                session.rollback()
                continue
            backup_id = backup.id
            session.commit()
        defer_backup(backup_id, workspace_id)
        requested.append(backup_id)
    return requested


# --------------------------------------------------------------------------------------------
# Retention


def _newest_per(backups_: Sequence[WorkspaceBackup], key: str, count: int) -> set[uuid.UUID]:
    """Ids of the newest backup of each of the ``count`` newest days (``key="%Y-%m-%d"``) or months (``"%Y-%m"``)."""
    kept: dict[str, uuid.UUID] = {}
    for backup in sorted(backups_, key=lambda b: b.created_at, reverse=True):
        bucket = backup.created_at.strftime(key)
        if bucket not in kept:
            if len(kept) == count:
                break
            kept[bucket] = backup.id
    return set(kept.values())


def scheduled_to_keep(tier: str, scheduled: Sequence[WorkspaceBackup], settings: Settings) -> set[uuid.UUID]:
    """Which of a workspace's completed scheduled backups its tier keeps."""
    if tier == TIER_ENTERPRISE:
        return _newest_per(scheduled, "%Y-%m-%d", settings.backup_keep_enterprise_daily) | _newest_per(
            scheduled, "%Y-%m", settings.backup_keep_enterprise_monthly
        )
    return _newest_per(scheduled, "%Y-%m-%d", settings.backup_keep_professional_daily)


def expired(
    tier: str, completed: Sequence[WorkspaceBackup], settings: Settings, now: datetime
) -> list[WorkspaceBackup]:
    """A workspace's completed backups that its retention no longer keeps: those past their own ``keep_until``, the
    scheduled ones its tier does not keep, manual and final ones past their configured days."""
    kept_days = {
        BackupKind.manual: timedelta(days=settings.backup_keep_manual_days),
        BackupKind.final: timedelta(days=settings.backup_keep_final_days),
    }
    scheduled = [b for b in completed if b.kind is BackupKind.scheduled and b.keep_until is None]
    keep = scheduled_to_keep(tier, scheduled, settings)
    out = []
    for backup in completed:
        if backup.keep_until is not None:
            gone = now > backup.keep_until
        elif backup.kind is BackupKind.scheduled:
            gone = backup.id not in keep
        else:
            gone = now - backup.created_at > kept_days[backup.kind]
        if gone:
            out.append(backup)
    return out


def _completed_of(session: Session, workspace_id: uuid.UUID) -> list[WorkspaceBackup]:
    query = select(WorkspaceBackup).where(
        WorkspaceBackup.workspace_id == workspace_id, WorkspaceBackup.state == BackupState.completed
    )
    return list(session.scalars(query.with_for_update()))


def _expire(session: Session, ws: Workspace, backup: WorkspaceBackup) -> None:
    """Discard the backup's parts through the provider (idempotent), then mark it expired, audited."""
    provider = backups.backup_provider(ws.tier.value)
    for part in backups.parts_of(backup):
        provider.discard(part)
    backup.state = BackupState.expired
    backups.audit_backup(session, backup, RETENTION, "expire")


def apply_retention(settings: Settings) -> list[uuid.UUID]:
    """Discard and mark ``expired`` every backup past its retention (one transaction per workspace); returns their
    ids."""
    now = utcnow()
    with session_scope() as session:
        workspace_ids = list(
            session.scalars(
                select(WorkspaceBackup.workspace_id).where(WorkspaceBackup.state == BackupState.completed).distinct()
            )
        )
    gone: list[uuid.UUID] = []
    for workspace_id in workspace_ids:
        with session_scope() as session:
            ws = session.get(Workspace, workspace_id)
            if ws is None:
                continue
            for backup in expired(ws.tier.value, _completed_of(session, workspace_id), settings, now):
                _expire(session, ws, backup)
                gone.append(backup.id)
            session.commit()
    return gone
