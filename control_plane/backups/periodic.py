"""procrastinate tasks of the backup lifecycle: scheduled backups, retention and restore drills, periodic when their
period is set (``backup_schedule_seconds``, ``backup_drill_seconds``; 0 = only their ``canopy backups`` verbs), and
the drill of one backup an operator asked for."""

from __future__ import annotations

import contextlib
import uuid

from procrastinate.exceptions import AlreadyEnqueued

from control_plane.backups import drills, schedule
from control_plane.backups.drill_models import DrillOutcome
from control_plane.core.settings import get_settings
from control_plane.core.task_queue import app, ensure_sync_open, every

SCHEDULE_TASK = "schedule_backups"
RETENTION_TASK = "expire_backups"
DRILL_TASK = "drill_backups"
DRILL_ONE_TASK = "drill_backup"

_settings_at_import = get_settings()


@app.task(name=SCHEDULE_TASK, lock=SCHEDULE_TASK, queueing_lock=SCHEDULE_TASK, pass_context=False)
def schedule_backups(timestamp: int) -> int:
    """Request the due scheduled backups; returns how many."""
    return len(schedule.request_scheduled(get_settings()))


@app.task(name=RETENTION_TASK, lock=RETENTION_TASK, queueing_lock=RETENTION_TASK, pass_context=False)
def expire_backups(timestamp: int) -> int:
    """Discard the backups past their retention; returns how many."""
    return len(schedule.apply_retention(get_settings()))


@app.task(name=DRILL_TASK, lock=DRILL_TASK, queueing_lock=DRILL_TASK, pass_context=False)
def drill_backups(timestamp: int) -> int:
    """Drill a sample of the backups; returns how many were found corrupt."""
    return sum(d.outcome is DrillOutcome.corrupt for d in drills.drill_sample(get_settings()))


def defer_drill(backup_id: uuid.UUID, actor: str) -> None:
    """Ask the workers to drill one backup (once: a second call while the job waits does nothing)."""
    ensure_sync_open()
    deferrer = app.configure_task(name=DRILL_ONE_TASK, lock=f"drill:{backup_id}", queueing_lock=f"drill:{backup_id}")
    with contextlib.suppress(AlreadyEnqueued):
        deferrer.defer(backup_id=str(backup_id), actor=actor)


@app.task(name=DRILL_ONE_TASK, pass_context=False)
def drill_backup(backup_id: str, actor: str) -> str:
    """Drill one backup; returns its outcome."""
    return drills.drill(get_settings(), uuid.UUID(backup_id), actor).outcome.value


if _settings_at_import.backup_schedule_seconds > 0:
    _check = every(schedule.check_seconds(_settings_at_import.backup_schedule_seconds))
    app.periodic(cron=_check, periodic_id=SCHEDULE_TASK)(schedule_backups)
    app.periodic(cron=_check, periodic_id=RETENTION_TASK)(expire_backups)
if _settings_at_import.backup_drill_seconds > 0:
    app.periodic(cron=every(_settings_at_import.backup_drill_seconds), periodic_id=DRILL_TASK)(drill_backups)
