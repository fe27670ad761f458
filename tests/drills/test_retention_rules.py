"""Retention per tier as a rule over a workspace's completed backups (no database): a Professional keeps 7 daily, an
Enterprise 30 daily and 12 monthly, manual and final backups their days, and a backup's own keep_until wins."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from control_plane.backups.models import BackupKind, BackupState, WorkspaceBackup
from control_plane.backups.schedule import expired, first_offset, is_due
from control_plane.core.settings import Settings
from infra.conventions import TIER_ENTERPRISE, TIER_PROFESSIONAL

NOW = datetime(2027, 6, 30, 12, 0, tzinfo=UTC)
SETTINGS = Settings()


def _backup(kind: BackupKind, at: datetime, keep_until: datetime | None = None) -> WorkspaceBackup:
    return WorkspaceBackup(
        id=uuid.uuid4(), kind=kind, state=BackupState.completed, created_at=at, keep_until=keep_until, parts=[]
    )


def _daily(days: int) -> list[WorkspaceBackup]:
    """One scheduled backup a day at 03:00 for ``days`` days up to NOW, newest first."""
    return [_backup(BackupKind.scheduled, NOW.replace(hour=3) - timedelta(days=d)) for d in range(days)]


def test_a_professional_keeps_its_seven_newest_days() -> None:
    backups = _daily(20)
    extra = _backup(BackupKind.scheduled, NOW.replace(hour=1))  # an older one of a kept day
    gone = expired(TIER_PROFESSIONAL, [*backups, extra], SETTINGS, NOW)
    assert {b.id for b in gone} == {b.id for b in backups[7:]} | {extra.id}


def test_an_enterprise_keeps_thirty_days_and_twelve_months() -> None:
    backups = _daily(500)
    kept = {b.id for b in backups} - {b.id for b in expired(TIER_ENTERPRISE, backups, SETTINGS, NOW)}
    days = {b.created_at.date() for b in backups if b.id in kept}
    newest_30 = {(NOW - timedelta(days=d)).date() for d in range(30)}
    assert newest_30 <= days
    monthly = days - newest_30  # a month's newest: its last day, for the months before June 2027
    assert sorted(monthly) == sorted(
        {datetime(2027, m, 1).date() - timedelta(days=1) for m in range(1, 7)}  # Dec 31 to May 31
        | {datetime(2026, m, 1).date() - timedelta(days=1) for m in range(8, 13)}  # Jul 31 to Nov 30
    )
    assert len(monthly) == 11  # June itself is one of the 12 months, kept by its daily backups


def test_manual_final_and_keep_until() -> None:
    old_manual = _backup(BackupKind.manual, NOW - timedelta(days=31))
    new_manual = _backup(BackupKind.manual, NOW - timedelta(days=29))
    old_final = _backup(BackupKind.final, NOW - timedelta(days=91))
    new_final = _backup(BackupKind.final, NOW - timedelta(days=89))
    held = _backup(BackupKind.final, NOW - timedelta(days=200), keep_until=NOW + timedelta(days=1))
    lapsed = _backup(BackupKind.scheduled, NOW, keep_until=NOW - timedelta(seconds=1))
    gone = expired(TIER_PROFESSIONAL, [old_manual, new_manual, old_final, new_final, held, lapsed], SETTINGS, NOW)
    assert {b.id for b in gone} == {old_manual.id, old_final.id, lapsed.id}


def test_first_backups_spread_over_the_period_and_then_come_a_period_apart() -> None:
    offsets = [first_offset(uuid.uuid4(), 86400).total_seconds() for _ in range(200)]
    assert 0 <= min(offsets) < 86400 / 10 and 86400 * 9 / 10 < max(offsets) < 86400
    assert not is_due(NOW + timedelta(seconds=1), None, NOW, 86400)
    assert is_due(NOW, None, NOW, 86400)
    assert not is_due(NOW, NOW - timedelta(hours=20), NOW, 86400)
    assert is_due(NOW, NOW - timedelta(hours=23, minutes=30), NOW, 86400)  # within one check of a day
