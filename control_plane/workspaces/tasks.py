"""procrastinate task of the workspaces domain: idle hibernation (:mod:`control_plane.workspaces.idle`), periodic
when enabled (``hibernate_idle_seconds`` > 0, and on aws a ``kube_wake_backend``)."""

from __future__ import annotations

from control_plane.core.settings import get_settings
from control_plane.core.task_queue import app, every
from control_plane.workspaces import idle

IDLE_TASK = "hibernate_idle_workspaces"

_settings_at_import = get_settings()


@app.task(name=IDLE_TASK, lock=IDLE_TASK, queueing_lock=IDLE_TASK, pass_context=False)
def hibernate_idle_workspaces(timestamp: int) -> int:
    """Hibernate the workspaces nobody has used for the idle period; returns how many."""
    return len(idle.hibernate_idle(get_settings()))


if idle.enabled(_settings_at_import):
    app.periodic(cron=every(idle.check_seconds(_settings_at_import.hibernate_idle_seconds)), periodic_id=IDLE_TASK)(
        hibernate_idle_workspaces
    )
