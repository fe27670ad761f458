"""The periodic drift detection (one at a time across all workers: procrastinate ``lock``)."""

from __future__ import annotations

from control_plane.core.settings import get_settings
from control_plane.core.task_queue import app, every
from control_plane.drift.detection import detect

DETECT_TASK = "detect_drift"

_settings_at_import = get_settings()


@app.periodic(cron=every(_settings_at_import.drift_seconds), periodic_id="drift")
@app.task(name=DETECT_TASK, lock=DETECT_TASK, queueing_lock=DETECT_TASK)
def detect_drift(timestamp: int) -> int:
    """Find drift across the converged fleet and reconcile what changed; returns how many workspaces drifted."""
    return len(detect(get_settings()))
