"""procrastinate tasks of self-serve billing: the periodic billing tick and seat collection, and the billing run
of one organization (never two at once: its procrastinate ``lock``)."""

from __future__ import annotations

import uuid

from control_plane.core.clock import utcnow
from control_plane.core.db import session_scope
from control_plane.core.settings import get_settings
from control_plane.core.task_queue import app, defer_once, every
from control_plane.reconciler.queue import Cause, defer_reconcile
from control_plane.subscriptions import repository, seats
from control_plane.subscriptions.models import SnapshotReason
from control_plane.subscriptions.run import RunOutcome, run_organization

BILL_TASK = "bill_organization"
TICK_TASK = "billing_tick"
COLLECT_TASK = "collect_seats"
COLLECT_ORGANIZATION_TASK = "collect_organization_seats"
TICK_BATCH = 10_000

_settings_at_import = get_settings()


def bill(organization_id: uuid.UUID) -> RunOutcome:
    """The billing run of one organization at the clock's now, then what its status changes ask for: the
    workspaces' reconciles (they tell their servers) and a seat snapshot at the billing event."""
    outcome = run_organization(organization_id)
    for workspace_id in outcome.changed_workspaces:
        defer_reconcile(workspace_id, Cause.billing)
    if outcome.status_changed:
        defer_once(COLLECT_ORGANIZATION_TASK, f"seats:{organization_id}", organization_id=str(organization_id))
    return outcome


def defer_billing(organization_id: uuid.UUID) -> None:
    """Ask the workers for the organization's billing run now (deduplicated while one is waiting)."""
    defer_once(
        BILL_TASK, f"bill:{organization_id}", lock=f"billing:{organization_id}", organization_id=str(organization_id)
    )


@app.task(name=BILL_TASK, pass_context=False)
def bill_organization(organization_id: str) -> str:
    """procrastinate entry point of :func:`bill`."""
    outcome = bill(uuid.UUID(organization_id))
    return f"invoices {outcome.invoices_created}, charges {outcome.charges}"


@app.task(name=TICK_TASK, queueing_lock=TICK_TASK, pass_context=False)
def billing_tick(timestamp: int) -> int:
    """Defer the billing run of every organization that has something due."""
    with session_scope() as session:
        due = repository.due(session, utcnow(), TICK_BATCH)
    for organization_id in due:
        defer_billing(organization_id)
    return len(due)


@app.task(name=COLLECT_TASK, queueing_lock=COLLECT_TASK, lock=COLLECT_TASK, pass_context=False)
def collect_seats(timestamp: int) -> int:
    """Today's seat snapshot of every billed workspace that has none yet."""
    return seats.collect().recorded


# Periodic unless configured to 0 (then operators and tests run them: ``canopy billing run|collect-seats``).
if _settings_at_import.billing_run_seconds > 0:
    app.periodic(cron=every(_settings_at_import.billing_run_seconds), periodic_id=TICK_TASK)(billing_tick)
if _settings_at_import.billing_seat_collection_seconds > 0:
    app.periodic(cron=every(_settings_at_import.billing_seat_collection_seconds), periodic_id=COLLECT_TASK)(
        collect_seats
    )


@app.task(name=COLLECT_ORGANIZATION_TASK, pass_context=False)
def collect_organization_seats(organization_id: str) -> int:
    """A seat snapshot of each of the organization's workspaces at a billing event."""
    return seats.collect(organization_id=uuid.UUID(organization_id), reason=SnapshotReason.billing_event).recorded
