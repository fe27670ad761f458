"""The billing run of one organization: trial notices and end, cancellation, invoices, charges, dunning, and the
long-suspension hibernation. Idempotent: run it as often as you like; it does what is due at the clock's now.

Phase one, under the subscription's row lock, moves the status and adds the due invoice rows (committed).
Phase two works through the unpaid invoices one gateway call at a time, committing each outcome.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from billing.engine.dunning import MarkUnpaid, RetryCharge, WaitUntil, next_dunning_action, retry_schedule
from billing.engine.periods import due_spans, midnight, period_of
from billing.engine.status import BillingEvent, BillingStatus
from billing.engine.trial import due_trial_notice, notice_schedule
from control_plane.core.clock import utcnow
from control_plane.core.db import session_scope
from control_plane.core.faults import fault_pause
from control_plane.core.settings import Settings, get_settings
from control_plane.subscriptions import invoicing, notices, repository, transitions
from control_plane.subscriptions.gateway import dunning_policy, trial_policy
from control_plane.subscriptions.models import Invoice, InvoiceState, Subscription

logger = logging.getLogger(__name__)

B = BillingStatus
E = BillingEvent
SAFETY_NET = timedelta(days=1)  # an organization is looked at at least daily
RETRY = timedelta(hours=1)  # seats not collected yet, an invoice not at the gateway yet


@dataclass
class RunOutcome:
    """What one run did: status changes (workspaces to reconcile), invoices created, charges made."""

    changed_workspaces: list[uuid.UUID] = field(default_factory=list)
    status_changed: bool = False
    invoices_created: int = 0
    charges: int = 0
    waiting_for_seats: bool = False


def run_organization(organization_id: uuid.UUID, now: datetime | None = None) -> RunOutcome:
    """Do whatever billing is due for the organization at ``now`` (default: the clock)."""
    settings = get_settings()
    now = now or utcnow()
    outcome = RunOutcome()
    with session_scope() as session:
        sub = repository.get(session, organization_id, for_update=True)
        if sub is None:
            return outcome
        _advance_status(session, settings, sub, now, outcome)
        _add_due_invoices(session, sub, now, outcome)
    with session_scope() as session:
        for invoice_id in [i.id for i in repository.unpaid_invoices(session, organization_id)]:
            _collect(settings, organization_id, invoice_id, now, outcome)
    with session_scope() as session:
        sub = repository.get(session, organization_id, for_update=True)
        if sub is not None:
            _settle(session, settings, sub, now, outcome)
            sub.next_run_at = _next_run(session, settings, sub, now, outcome)
    return outcome


def _apply(session: Session, sub: Subscription, event: BillingEvent, at: datetime, outcome: RunOutcome) -> None:
    outcome.changed_workspaces += transitions.apply(session, sub, event, at)
    outcome.status_changed = True


def _advance_status(
    session: Session, settings: Settings, sub: Subscription, now: datetime, outcome: RunOutcome
) -> None:
    if sub.status is B.trialing:
        _trial(session, settings, sub, now, outcome)
    if sub.status in (B.active, B.past_due) and sub.cancel_at is not None and now >= sub.cancel_at:
        _apply(session, sub, E.cancellation_effective, sub.cancel_at, outcome)
    if (
        sub.status is B.unpaid
        and _card_added_since_suspension(sub)
        and not repository.unpaid_invoices(session, sub.organization_id)
    ):
        _apply(session, sub, E.payment_method_added, now, outcome)
    hibernate_at = _hibernation_due_at(settings, sub)
    if hibernate_at is not None and now >= hibernate_at:
        outcome.changed_workspaces += transitions.hibernate_suspended(session, sub.organization_id)


def _trial(session: Session, settings: Settings, sub: Subscription, now: datetime, outcome: RunOutcome) -> None:
    policy = trial_policy(settings)
    notice = due_trial_notice(sub.trial_started_at, now, policy)
    if notice is not None and sub.cancel_at is None:
        notices.trial_notice(session, settings, sub.organization_id, notice, sub.trial_ends_at, now)
    if now < sub.trial_ends_at:
        return
    if sub.cancel_at is not None:
        _apply(session, sub, E.cancellation_effective, sub.trial_ends_at, outcome)
    elif sub.payment_method_id is not None:
        _apply(session, sub, E.trial_ended_with_card, sub.trial_ends_at, outcome)
    else:
        _apply(session, sub, E.trial_ended_without_card, sub.trial_ends_at, outcome)
        notices.suspended(session, settings, sub.organization_id, "Your 14-day trial has ended.", now)


def _card_added_since_suspension(sub: Subscription) -> bool:
    added, suspended = sub.payment_method_added_at, sub.suspended_at
    return sub.payment_method_id is not None and added is not None and (suspended is None or added >= suspended)


def _hibernation_due_at(settings: Settings, sub: Subscription) -> datetime | None:
    if sub.suspended_at is None:
        return None
    return sub.suspended_at + timedelta(days=settings.billing_hibernate_after_days)


def _add_due_invoices(session: Session, sub: Subscription, now: datetime, outcome: RunOutcome) -> None:
    ended = sub.status is B.canceled
    spans = due_spans(transitions.paid_intervals(sub), now, ended=ended)
    for index, due in enumerate(spans):
        if repository.invoice(session, sub.organization_id, due.span.period.key) is not None:
            continue
        final = ended and index == len(spans) - 1
        if invoicing.ensure_invoice(session, sub.organization_id, due, final) is None:
            outcome.waiting_for_seats = True  # a later run retries once the seats are known
            return
        outcome.invoices_created += 1


def _collect(
    settings: Settings, organization_id: uuid.UUID, invoice_id: uuid.UUID, now: datetime, outcome: RunOutcome
) -> None:
    """Take one unpaid invoice one step further: to the gateway, then the charge it is due."""
    with session_scope() as session:
        sub = repository.get(session, organization_id)
        invoice = session.get(Invoice, invoice_id)
        if sub is None or invoice is None or sub.customer_id is None:
            return
        customer_id, attempt = sub.customer_id, _due_attempt(settings, sub, invoice, now)
        has_card, pending = sub.payment_method_id is not None, invoice.state is InvoiceState.pending
        session.expunge(invoice)
    if pending:
        created = invoicing.create_at_gateway(settings, invoice, customer_id)
        fault_pause("billing:invoice-created")
        with session_scope() as session:
            row = session.get(Invoice, invoice_id, with_for_update=True)
            assert row is not None
            invoicing.record_created(row, created, now)
            invoice.gateway_invoice_id = created.id
            attempt = 1 if row.state is InvoiceState.open and has_card else None
    if attempt is None:
        return
    result = invoicing.charge(settings, invoice, attempt)
    fault_pause("billing:charged")
    outcome.charges += 1
    with session_scope() as session:
        row = session.get(Invoice, invoice_id, with_for_update=True)
        assert row is not None
        invoicing.record_attempt(row, attempt, result, now)
        if result.succeeded:
            notices.payment_succeeded(session, settings, row, now)
        else:
            retry_at = _retry_at(settings, row, attempt)
            notices.payment_failed(session, settings, row, attempt, retry_at, now)


def _due_attempt(settings: Settings, sub: Subscription, invoice: Invoice, now: datetime) -> int | None:
    """The number of the charge attempt due now for an invoice at the gateway (``None``: nothing due)."""
    if invoice.state is not InvoiceState.open or sub.payment_method_id is None:
        return None
    if invoice.attempts == 0:
        return 1
    added = sub.payment_method_added_at
    if added is not None and (invoice.last_attempt_at is None or added > invoice.last_attempt_at):
        return invoice.attempts + 1  # a new card is tried at once
    if sub.status is not B.past_due or invoice.first_failure_at is None:
        return None
    action = next_dunning_action(invoice.first_failure_at, invoice.attempts, now, dunning_policy(settings))
    return invoice.attempts + 1 if isinstance(action, RetryCharge) else None


def _retry_at(settings: Settings, invoice: Invoice, attempt: int) -> datetime | None:
    assert invoice.first_failure_at is not None
    schedule = retry_schedule(invoice.first_failure_at, dunning_policy(settings))
    return schedule[attempt - 1] if attempt <= len(schedule) else None


def _settle(session: Session, settings: Settings, sub: Subscription, now: datetime, outcome: RunOutcome) -> None:
    """Move the status by the invoices' outcome: a failure starts dunning, full payment ends it."""
    open_invoices = [
        i for i in repository.unpaid_invoices(session, sub.organization_id) if i.state is InvoiceState.open
    ]
    failed = [i for i in open_invoices if i.first_failure_at is not None]
    if not open_invoices:
        if sub.status is B.past_due or (sub.status is B.unpaid and _paid_since_suspension(session, sub)):
            _apply(session, sub, E.payment_succeeded, now, outcome)
        return
    if failed and sub.status is B.active:
        _apply(session, sub, E.payment_failed, now, outcome)
    if sub.status is B.past_due and any(_exhausted(settings, i, now) for i in failed):
        _apply(session, sub, E.retries_exhausted, now, outcome)
        notices.suspended(session, settings, sub.organization_id, "We could not collect your payment.", now)


def _paid_since_suspension(session: Session, sub: Subscription) -> bool:
    return any(
        i.paid_at is not None and sub.suspended_at is not None and i.paid_at >= sub.suspended_at
        for i in repository.invoices(session, sub.organization_id, limit=12)
    )


def _exhausted(settings: Settings, invoice: Invoice, now: datetime) -> bool:
    assert invoice.first_failure_at is not None
    action = next_dunning_action(invoice.first_failure_at, invoice.attempts, now, dunning_policy(settings))
    return isinstance(action, MarkUnpaid)


def _next_run(session: Session, settings: Settings, sub: Subscription, now: datetime, outcome: RunOutcome) -> datetime:
    """When this organization next has something due (at the latest a day from now)."""
    candidates = [now + SAFETY_NET]
    if outcome.waiting_for_seats:
        candidates.append(now + RETRY)
    if sub.status is B.trialing:
        candidates.append(sub.trial_ends_at)
        candidates += [at for _, at in notice_schedule(sub.trial_started_at, trial_policy(settings)) if at > now]
    if sub.cancel_at is not None and sub.cancel_at > now:
        candidates.append(sub.cancel_at)
    if sub.paid_intervals:
        candidates.append(midnight(period_of(now.date()).end))
    hibernate_at = _hibernation_due_at(settings, sub)
    if hibernate_at is not None and hibernate_at > now:
        candidates.append(hibernate_at)
    for invoice in repository.unpaid_invoices(session, sub.organization_id):
        if invoice.state is InvoiceState.pending:
            candidates.append(now + RETRY)
        elif invoice.first_failure_at is not None and sub.status is B.past_due:
            action = next_dunning_action(invoice.first_failure_at, invoice.attempts, now, dunning_policy(settings))
            candidates.append(action.at if isinstance(action, WaitUntil) else now)
    return min(candidates)
