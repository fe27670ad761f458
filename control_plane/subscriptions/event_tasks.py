"""procrastinate tasks of Stripe's side of billing: applying a webhook event, deferring again the events a crash
left unapplied, and the nightly reconciliation."""

from __future__ import annotations

from datetime import timedelta

from control_plane.core.clock import utcnow
from control_plane.core.db import session_scope
from control_plane.core.settings import get_settings
from control_plane.core.task_queue import app, defer_once, every
from control_plane.subscriptions import webhooks
from control_plane.subscriptions.reconciliation import reconcile_billing

APPLY_TASK = "apply_stripe_event"
REAPPLY_TASK = "reapply_stripe_events"
RECONCILE_TASK = "reconcile_billing"
RECONCILE_CRON = "40 3 * * *"  # nightly, 03:40 UTC
REAPPLY_SECONDS = 300
REAPPLY_AFTER = timedelta(minutes=2)  # an event this old and unapplied lost its job
REAPPLY_BATCH = 1000


def defer_apply(event_id: str) -> None:
    """Ask the workers to apply an inbox event (once while one job for it is waiting)."""
    defer_once(APPLY_TASK, f"stripe-event:{event_id}", event_id=event_id)


@app.task(name=APPLY_TASK, pass_context=False)
def apply_stripe_event(event_id: str) -> str:
    """procrastinate entry point of :func:`control_plane.subscriptions.webhooks.apply`."""
    return webhooks.apply(event_id)


@app.periodic(cron=every(REAPPLY_SECONDS), periodic_id=REAPPLY_TASK)
@app.task(name=REAPPLY_TASK, queueing_lock=REAPPLY_TASK, pass_context=False)
def reapply_stripe_events(timestamp: int) -> int:
    """Defer again the events still unapplied a while after they arrived (their job was lost or failed)."""
    with session_scope() as session:
        event_ids = webhooks.unapplied(session, utcnow() - REAPPLY_AFTER, REAPPLY_BATCH)
    for event_id in event_ids:
        defer_apply(event_id)
    return len(event_ids)


@app.task(name=RECONCILE_TASK, queueing_lock=RECONCILE_TASK, lock=RECONCILE_TASK, pass_context=False)
def reconcile_billing_nightly(timestamp: int) -> str:
    """procrastinate entry point of :func:`control_plane.subscriptions.reconciliation.reconcile_billing`."""
    report = reconcile_billing()
    return f"{report.organizations} organizations, {len(report.drift)} drift"


# Nightly unless the periodic billing tasks are off (``CANOPY_BILLING_RUN_SECONDS=0``: tests and operators run it).
if get_settings().billing_run_seconds > 0:
    app.periodic(cron=RECONCILE_CRON, periodic_id=RECONCILE_TASK)(reconcile_billing_nightly)
