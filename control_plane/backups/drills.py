"""Restore drills: how we know backups work.

A drill takes a completed backup and

1. re-reads every part whole (:meth:`BackupProvider.verify`: size and SHA-256 of a file or object, a part that
   does not decrypt is corrupt too; a silo's RDS snapshot: there, available, under the workspace's key);
2. restores its database part into a scratch database (:meth:`BackupProvider.scratch_restore`) named after a
   synthetic :class:`WorkspaceSpec` (a fresh id, never a workspace row), torn down afterwards whatever happened:
   on the local runtime and a pooled cell a database the provider's own ``ensure`` makes, with a throwaway
   password that is never stored; for a silo a scratch RDS instance restored from the snapshot;
3. checks it: a database the control plane can read has the workspace server's schema and exactly the backup's
   recorded number of posts (when it recorded one); a silo's scratch instance became available under the
   workspace's key.

The outcome is a :class:`BackupDrill` row (``ok``, or ``corrupt`` with what is wrong), audited; a corrupt one is
mailed to the operators. A periodic task (:mod:`control_plane.backups.periodic`) drills a sample of the backups not
drilled recently; ``canopy backups drill`` and ``POST /api/v1/backups/{id}/drills`` drill one now.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

import psycopg
from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from control_plane.accounts.models import Account
from control_plane.audit.service import record
from control_plane.backups import repository as backups_repo
from control_plane.backups import service as backups_service
from control_plane.backups.drill_models import BackupDrill, DrillOutcome
from control_plane.backups.models import BackupState, WorkspaceBackup
from control_plane.core.authz import Role
from control_plane.core.clock import utcnow
from control_plane.core.db import session_scope
from control_plane.core.problems import Conflict, NotFound
from control_plane.core.settings import Settings
from control_plane.credentials.models import Purpose
from control_plane.mail import service as mail
from control_plane.providers.base import BackupPart, ProviderError, Providers, WorkspaceSpec
from control_plane.providers.factory import get_providers
from control_plane.workspaces.models import Workspace

logger = logging.getLogger(__name__)

DATABASE_PART: Final = "database"
SCHEMA_TABLES: Final = ("workspace_alembic_version", "users", "teams", "channels", "posts")
"""Tables whose absence makes a restored database no workspace's."""


def scratch_spec(ws: Workspace) -> WorkspaceSpec:
    """A workspace-like spec of the same organization, tier, region and cell as ``ws``, with an id of its own (so
    every name derived from it, such as the database's, is new)."""
    scratch_id = uuid.uuid4()
    return WorkspaceSpec(
        id=scratch_id,
        slug=f"drill-{scratch_id.hex[:12]}",
        organization_id=ws.organization_id,
        tier=ws.tier.value,
        region=ws.region,
        display_name="Restore drill",
        cell=ws.cell,
    )


def _scratch_providers(settings: Settings, spec: WorkspaceSpec) -> Providers:
    """The deployment's providers for the scratch spec, whose database password lives only in this drill."""
    password = secrets.token_urlsafe(32)

    def scratch_secret(workspace_id: uuid.UUID, purpose: Purpose) -> str:
        if workspace_id != spec.id:
            raise ProviderError("a drill's providers serve its scratch database only")
        return password

    return get_providers(settings, spec.tier, secrets=scratch_secret)


def check_restored(url: str, expected_posts: int | None) -> tuple[list[str], int | None]:
    """What is wrong with a restored workspace database (schema, post count), and its post count. A backup that
    recorded no count was taken of a database no server had initialised: restoring it is all there is to check."""
    if expected_posts is None:
        return [], None
    with psycopg.connect(url) as conn:
        missing = [
            t for t in SCHEMA_TABLES if conn.execute("SELECT to_regclass(%s)", [t]).fetchone() in (None, (None,))
        ]
        if missing:
            return [f"restored database lacks {', '.join(missing)}"], None
        row = conn.execute("SELECT count(*) FROM posts").fetchone()
    posts = int(row[0]) if row else 0
    if posts != expected_posts:
        return [f"restored database holds {posts} posts, the backup recorded {expected_posts}"], posts
    return [], posts


@dataclass(frozen=True)
class Examination:
    """What a drill found: what is wrong (nothing when empty), the restored post count, and the scratch database it
    restored into (gone by now)."""

    problems: list[str]
    posts: int | None = None
    scratch_database: str | None = None


def _restore_and_check(settings: Settings, ws: Workspace, part: BackupPart, expected_posts: int | None) -> Examination:
    spec = scratch_spec(ws)
    backup = _scratch_providers(settings, spec).backup
    assert backup is not None
    try:
        with backup.scratch_restore(spec, part) as scratch:
            if scratch.url is None:  # only what the cloud reports of the restored database
                return Examination(scratch.problems, None, scratch.name)
            problems, posts = check_restored(scratch.url, expected_posts)
            return Examination(scratch.problems + problems, posts, scratch.name)
    except ProviderError as exc:
        return Examination([f"database part does not restore: {exc}"])


def examine(settings: Settings, ws: Workspace, backup: WorkspaceBackup) -> Examination:
    """Re-read every part of ``backup``, then restore its database part into a scratch database and check it."""
    providers = get_providers(settings, ws.tier.value)
    if providers.backup is None:
        raise Conflict("backups-unavailable", "This deployment keeps no backups of this tier")
    parts = backups_service.parts_of(backup)
    problems = []
    for part in parts:
        try:
            wrong = providers.backup.verify(part)
        except ProviderError as exc:
            wrong = f"part {part.name} cannot be read: {exc}"
        if wrong:
            problems.append(wrong)
    if problems:  # a part that does not re-read whole is not worth restoring
        return Examination(problems)
    database = next((p for p in parts if p.name == DATABASE_PART), None)
    if database is None:
        return Examination(["the backup has no database part"])
    return _restore_and_check(settings, ws, database, backup.posts)


def _notify_operators(session: Session, ws: Workspace, drill: BackupDrill) -> None:
    """Mail every operator account about a corrupt backup."""
    operators = session.scalars(select(Account.email).where(Account.staff_role.in_((Role.operator, Role.admin))))
    body = (
        f"The restore drill {drill.id} of backup {drill.backup_id} of workspace {ws.slug} ({ws.id}) found it corrupt:\n"
        + "".join(f"- {problem}\n" for problem in drill.problems)
        + "\nSee runbooks/restore-a-workspace.md; take a fresh backup of the workspace now."
    )
    for email in operators:
        mail.queue(session, email, f"Restore drill: backup of {ws.slug} is corrupt", body)


def drillable(session: Session, backup_id: uuid.UUID, *, completed: bool = True) -> WorkspaceBackup:
    """The backup (404 if there is none), completed unless ``completed`` is False (409)."""
    backup = backups_repo.get(session, backup_id)
    if backup is None:
        raise NotFound("Backup")
    if completed and backup.state is not BackupState.completed:
        raise Conflict("backup-not-completed", f"The backup is {backup.state.value}: only a completed one drills")
    return backup


def drill(settings: Settings, backup_id: uuid.UUID, actor: str) -> BackupDrill:
    """Drill one completed backup now; the drill row is committed, audited and (corrupt) mailed to operators."""
    with session_scope() as session:
        backup = drillable(session, backup_id)
        ws = session.get(Workspace, backup.workspace_id)
        assert ws is not None
        session.expunge_all()
    started = time.monotonic()
    found = examine(settings, ws, backup)
    problems, posts = found.problems, found.posts
    with session_scope() as session:
        row = BackupDrill(
            backup_id=backup.id,
            workspace_id=ws.id,
            outcome=DrillOutcome.corrupt if problems else DrillOutcome.ok,
            problems=problems,
            posts_restored=posts,
            duration_seconds=round(time.monotonic() - started, 3),
            requested_by=actor,
            created_at=utcnow(),
        )
        session.add(row)
        session.flush()
        record(
            session,
            actor=actor,
            action=f"backup.drill.{row.outcome.value}",
            target_type="backup",
            target_id=backup.id,
            organization_id=ws.organization_id,
            after={
                "drill_id": str(row.id),
                "outcome": row.outcome.value,
                "problems": problems,
                "posts": posts,
                "scratch_database": found.scratch_database,
            },
        )
        if problems:
            logger.warning("restore drill %s: backup %s is corrupt: %s", row.id, backup.id, "; ".join(problems))
            _notify_operators(session, ws, row)
        session.commit()
        session.refresh(row)
        session.expunge(row)
    return row


def sample(session: Session, settings: Settings) -> list[uuid.UUID]:
    """Up to ``backup_drill_sample`` completed backups drilled by nobody within ``backup_drill_recent_days``."""
    since = utcnow() - timedelta(days=settings.backup_drill_recent_days)
    drilled = exists().where(BackupDrill.backup_id == WorkspaceBackup.id, BackupDrill.created_at >= since)
    query = (
        select(WorkspaceBackup.id)
        .where(WorkspaceBackup.state == BackupState.completed, ~drilled)
        .order_by(func.random())
        .limit(settings.backup_drill_sample)
    )
    return list(session.scalars(query))


def drill_sample(settings: Settings, actor: str = "drills") -> list[BackupDrill]:
    """Drill a sample of the backups (the periodic task)."""
    with session_scope() as session:
        picked = sample(session, settings)
    return [drill(settings, backup_id, actor) for backup_id in picked]


def of_backup(session: Session, backup_id: uuid.UUID, limit: int = 20) -> list[BackupDrill]:
    """The backup's newest drills."""
    query = (
        select(BackupDrill)
        .where(BackupDrill.backup_id == backup_id)
        .order_by(BackupDrill.created_at.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


def newest(session: Session, limit: int) -> list[BackupDrill]:
    """The newest ``limit`` drills of every backup, corrupt ones first."""
    recent = select(BackupDrill.id).order_by(BackupDrill.created_at.desc()).limit(limit).scalar_subquery()
    corrupt_first = (BackupDrill.outcome == DrillOutcome.corrupt).desc()
    query = select(BackupDrill).where(BackupDrill.id.in_(recent)).order_by(corrupt_first, BackupDrill.created_at.desc())
    return list(session.scalars(query))


def latest_outcomes(session: Session) -> dict[DrillOutcome, int]:
    """How many backups' newest drill is ok and how many corrupt (for /metrics)."""
    order = func.row_number().over(partition_by=BackupDrill.backup_id, order_by=BackupDrill.created_at.desc())
    ranked = select(BackupDrill.outcome, order.label("n")).subquery()
    rows = session.execute(
        select(ranked.c.outcome, func.count()).where(ranked.c.n == 1).group_by(ranked.c.outcome)
    ).all()
    found = {outcome: 0 for outcome in DrillOutcome}
    found.update({DrillOutcome(outcome): int(count) for outcome, count in rows})
    return found
