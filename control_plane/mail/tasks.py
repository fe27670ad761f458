"""Background delivery of the mail outbox."""

from __future__ import annotations

from control_plane.core.db import session_scope
from control_plane.core.task_queue import app
from control_plane.mail.service import deliver_pending

DELIVER_TASK = "deliver_mail"


@app.periodic(cron="* * * * * */5", periodic_id=DELIVER_TASK)
@app.task(name=DELIVER_TASK, queueing_lock=DELIVER_TASK, pass_context=False)
def deliver_mail(timestamp: int) -> int:
    """Send whatever the outbox holds (every 5 seconds)."""
    with session_scope() as session:
        return deliver_pending(session)
