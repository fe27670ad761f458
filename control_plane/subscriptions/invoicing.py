"""Invoices: one row per organization and period (the exactly-once guard), priced by the engine from the seat
snapshots, then created at the gateway and charged.

Each step commits before the next gateway call and the gateway finds what an interrupted call made, so a run
killed at any point is completed by the next one and never charges twice.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import asdict
from datetime import date, datetime

from sqlalchemy.orm import Session

from billing.engine.periods import DueSpan, InvoiceSpan, midnight, period_of
from billing.engine.pricing import PROFESSIONAL, InvoiceDraft, InvoiceLine, price_span
from billing.engine.seats import MissingSeatSnapshot, organization_seats_per_day
from billing.gateway import GatewayInvoice, InvoiceStatus, PaymentResult, invoice_request
from control_plane.core.settings import Settings
from control_plane.subscriptions import repository
from control_plane.subscriptions.gateway import payment_gateway, seat_price_id
from control_plane.subscriptions.models import Invoice, InvoiceState

logger = logging.getLogger(__name__)


def ensure_invoice(session: Session, organization_id: uuid.UUID, due: DueSpan, final: bool) -> Invoice | None:
    """The invoice row of ``due``'s period, priced and added (not committed) if missing; ``None`` while a billed
    day has no seat snapshot yet (billing never guesses a count)."""
    existing = repository.invoice(session, organization_id, due.span.period.key)
    if existing is not None:
        return existing
    try:
        draft = price_due_span(session, organization_id, due)
    except MissingSeatSnapshot as missing:
        logger.warning("organization %s: cannot invoice %s yet: %s", organization_id, due.span.period.key, missing)
        return None
    invoice = Invoice(
        organization_id=organization_id,
        period=due.span.period.key,
        first_day=due.span.first_day,
        end_day=due.span.end_day,
        currency=draft.price.currency,
        amount_cents=draft.total_cents,
        lines=[_line_json(line) for line in draft.lines],
        final=final,
        state=InvoiceState.pending if draft.lines else InvoiceState.paid,
        attempts=0,
    )
    session.add(invoice)
    session.flush()
    return invoice


def price_due_span(session: Session, organization_id: uuid.UUID, due: DueSpan) -> InvoiceDraft:
    """The engine's draft of a due span: each billed day's seats across the organization's workspaces."""
    days = due.span.each_day()
    per_workspace = repository.snapshots(session, organization_id, until=midnight(due.span.end_day))
    seats = organization_seats_per_day(per_workspace.values(), days)
    return price_span(due.span, [count if due.is_billed(day) else 0 for day, count in zip(days, seats, strict=True)])


def _line_json(line: InvoiceLine) -> dict[str, object]:
    return {**asdict(line), "first_day": line.first_day.isoformat()}


def draft_of(invoice: Invoice) -> InvoiceDraft:
    """The engine draft an invoice row holds (what the gateway receives)."""
    period = period_of(invoice.first_day)
    lines = tuple(
        InvoiceLine(
            first_day=date.fromisoformat(str(line["first_day"])),
            days=int(line["days"]),
            seats=int(line["seats"]),
            unit_amount_cents=int(line["unit_amount_cents"]),
            days_in_period=int(line["days_in_period"]),
            amount_cents=int(line["amount_cents"]),
        )
        for line in invoice.lines
    )
    return InvoiceDraft(InvoiceSpan(period, invoice.first_day, invoice.end_day), PROFESSIONAL, lines)


def create_at_gateway(settings: Settings, invoice: Invoice, customer_id: str) -> GatewayInvoice:
    """Create the invoice at the gateway (found again if an earlier attempt got that far)."""
    request = invoice_request(str(invoice.id), customer_id, draft_of(invoice), seat_price_id(settings))
    return payment_gateway(settings).create_invoice(request)


def charge(settings: Settings, invoice: Invoice, attempt: int) -> PaymentResult:
    """Charge attempt number ``attempt`` of an invoice the gateway holds."""
    if invoice.gateway_invoice_id is None:
        raise ValueError(f"invoice {invoice.id} is not at the gateway yet")
    return payment_gateway(settings).pay_invoice(invoice.gateway_invoice_id, str(invoice.id), attempt)


def record_created(invoice: Invoice, created: GatewayInvoice, now: datetime) -> None:
    """The gateway holds the invoice (paid already, if an interrupted run got that far)."""
    invoice.gateway_invoice_id = created.id
    invoice.state = InvoiceState.open
    record_gateway_state(invoice, created, now)


def record_attempt(invoice: Invoice, attempt: int, result: PaymentResult, now: datetime) -> None:
    """The outcome of charge attempt ``attempt``."""
    invoice.attempts = max(invoice.attempts, attempt)
    invoice.last_attempt_at = now
    record_gateway_state(invoice, result.invoice, now)
    if not result.succeeded:
        invoice.first_failure_at = invoice.first_failure_at or now
        invoice.last_failure = (result.failure_message or "The charge failed.")[:500]


def record_gateway_state(invoice: Invoice, held: GatewayInvoice, now: datetime) -> None:
    """Take the gateway's word on whether the invoice is paid (a webhook or a reconciliation read it)."""
    if held.status is InvoiceStatus.paid and invoice.state is not InvoiceState.paid:
        invoice.state = InvoiceState.paid
        invoice.paid_at = now
        invoice.last_failure = None
    invoice.updated_at = now
