"""The nightly comparison of Stripe with Canopy: customers, default payment methods and invoices.

For each subscription with a customer: the customer exists at Stripe, its default payment method is our card, each
of our invoices at Stripe has Stripe's status (paid, or open: a draft on localstripe) and our amount, and every open
invoice Stripe holds for the customer is one of ours. Two calls per customer (the customer, then its invoices a page
of 100 at a time), organizations read from the database in batches. Each run is recorded (``BillingReconciliation``),
each drift audited, and ``/metrics`` shows the latest run's drift (:func:`figures`). Nothing is repaired here: the
webhooks bring paid invoices and changed cards in, the rest is a person's call.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import stripe
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing.gateway import GatewayInvoice, InvoiceStatus, PaymentGateway
from control_plane.audit import service as audit
from control_plane.core.clock import utcnow
from control_plane.core.db import session_scope
from control_plane.core.settings import get_settings
from control_plane.subscriptions.gateway import billing_enabled, payment_gateway
from control_plane.subscriptions.models import BillingReconciliation, Invoice, InvoiceState, StripeEvent, Subscription

logger = logging.getLogger(__name__)

ACTOR = "billing-reconciliation"
BATCH = 500
OPEN_AT_STRIPE = frozenset({InvoiceStatus.draft, InvoiceStatus.open})  # localstripe pays from draft


@dataclass(frozen=True)
class Drift:
    """One disagreement between Stripe and Canopy about an organization (``detail`` names ids, never secrets)."""

    organization_id: uuid.UUID
    kind: str
    detail: str

    def as_json(self) -> dict[str, str]:
        """The drift as stored in the report."""
        return {"organization_id": str(self.organization_id), "kind": self.kind, "detail": self.detail}


@dataclass(frozen=True)
class Report:
    """One reconciliation: when, how many organizations were compared, what drifted."""

    ran_at: datetime
    organizations: int
    drift: list[Drift]


def reconcile_billing(now: datetime | None = None) -> Report:
    """Compare every organization with a Stripe customer, record the report and audit each drift."""
    now = now or utcnow()
    settings = get_settings()
    if not billing_enabled(settings):
        return Report(now, 0, [])
    gateway = payment_gateway(settings)
    organizations, drift = 0, []
    for sub, invoices in _accounts():
        organizations += 1
        drift += compare(gateway, sub, invoices)
    with session_scope() as session:
        session.add(BillingReconciliation(ran_at=now, organizations=organizations, drift=[d.as_json() for d in drift]))
        for found in drift:
            audit.record(
                session,
                actor=ACTOR,
                action="billing.drift_found",
                target_type="organization",
                target_id=found.organization_id,
                organization_id=found.organization_id,
                after={"kind": found.kind, "detail": found.detail},
            )
    logger.info("billing reconciliation: %d organizations, %d drift", organizations, len(drift))
    return Report(now, organizations, drift)


def _accounts() -> Iterator[tuple[Subscription, list[Invoice]]]:
    """Each subscription with a customer and its invoices, read a batch of organizations at a time."""
    after: uuid.UUID | None = None
    while True:
        with session_scope() as session:
            query = select(Subscription).where(Subscription.customer_id.is_not(None))
            if after is not None:
                query = query.where(Subscription.organization_id > after)
            subs = list(session.scalars(query.order_by(Subscription.organization_id).limit(BATCH)))
            ids = [sub.organization_id for sub in subs]
            invoices: dict[uuid.UUID, list[Invoice]] = {organization_id: [] for organization_id in ids}
            for invoice in session.scalars(select(Invoice).where(Invoice.organization_id.in_(ids))):
                invoices[invoice.organization_id].append(invoice)
        yield from ((sub, invoices[sub.organization_id]) for sub in subs)
        if len(subs) < BATCH:
            return
        after = ids[-1]


def compare(gateway: PaymentGateway, sub: Subscription, invoices: Sequence[Invoice]) -> list[Drift]:
    """What Stripe and Canopy disagree on about one organization."""
    assert sub.customer_id is not None
    organization_id = sub.organization_id
    try:
        customer = gateway.retrieve_customer(sub.customer_id)
        held = {invoice.id: invoice for invoice in gateway.customer_invoices(sub.customer_id)} if customer else {}
    except stripe.StripeError as e:
        detail = f"Stripe did not answer for {sub.customer_id}: {type(e).__name__}"
        return [Drift(organization_id, "unreadable", detail)]
    if customer is None:
        return [Drift(organization_id, "customer-missing", f"Stripe has no customer {sub.customer_id}")]
    drift = []
    if customer.default_payment_method != sub.payment_method_id:
        drift.append(
            Drift(
                organization_id,
                "payment-method",
                f"the default payment method is {customer.default_payment_method or 'none'} at Stripe, "
                f"{sub.payment_method_id or 'none'} at Canopy",
            )
        )
    ours = {invoice.gateway_invoice_id: invoice for invoice in invoices if invoice.gateway_invoice_id}
    for gateway_id, invoice in ours.items():
        drift += _invoice_drift(organization_id, invoice, held.get(gateway_id))
    keys = {str(invoice.id) for invoice in invoices}
    for theirs in held.values():
        if theirs.status in OPEN_AT_STRIPE and theirs.id not in ours and theirs.invoice_key not in keys:
            detail = f"Stripe holds the {theirs.status.value} invoice {theirs.id} of {theirs.amount_due} cents"
            drift.append(Drift(organization_id, "invoice-unknown", detail))
    return drift


def _invoice_drift(organization_id: uuid.UUID, ours: Invoice, theirs: GatewayInvoice | None) -> list[Drift]:
    name = f"invoice {ours.gateway_invoice_id} ({ours.period})"
    if theirs is None:
        return [Drift(organization_id, "invoice-missing", f"Stripe has no {name}")]
    drift = []
    agrees = theirs.status is InvoiceStatus.paid if ours.state is InvoiceState.paid else theirs.status in OPEN_AT_STRIPE
    if not agrees:
        detail = f"{name} is {theirs.status.value} at Stripe, {ours.state.value} at Canopy"
        drift.append(Drift(organization_id, "invoice-status", detail))
    if theirs.amount_due != ours.amount_cents:
        detail = f"{name} is due {theirs.amount_due} cents at Stripe, {ours.amount_cents} at Canopy"
        drift.append(Drift(organization_id, "invoice-amount", detail))
    return drift


@dataclass(frozen=True)
class Figures:
    """What ``/metrics`` shows of billing: the latest reconciliation's drift and time, and the unapplied events."""

    drift: int
    reconciled_at: datetime | None
    unprocessed_events: int


def figures(session: Session) -> Figures:
    """The billing figures, read from the database (every API process shows the same)."""
    latest = session.execute(
        select(BillingReconciliation.ran_at, func.jsonb_array_length(BillingReconciliation.drift))
        .order_by(BillingReconciliation.ran_at.desc())
        .limit(1)
    ).first()
    unprocessed = session.scalar(
        select(func.count()).select_from(StripeEvent).where(StripeEvent.processed_at.is_(None))
    )
    ran_at, drift = latest if latest is not None else (None, 0)
    return Figures(int(drift or 0), ran_at, int(unprocessed or 0))
