"""Stripe webhooks: the inbox of verified events, and applying one by reading its object from Stripe again.

Receiving stores each event once by id (``stripe_events``) and asks the workers to apply it. Applying never trusts
the delivered copy or the order of arrival: it reads the invoice, payment or customer from Stripe *now* and brings
Canopy's record to it (an invoice Stripe holds as paid is paid here; the customer's default card is ours), then
asks for the organization's billing run, which settles the billing status. Applying never charges, so a duplicate,
a late or a reordered event can only repeat a no-op.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import stripe
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from billing.engine.status import BillingStatus
from billing.gateway import Card, GatewayInvoice, InvoiceStatus
from billing.webhooks import WebhookEvent
from control_plane.audit import service as audit
from control_plane.contracts.collection import sync_gateway_invoice as contract_invoice
from control_plane.core.clock import utcnow
from control_plane.core.db import session_scope
from control_plane.core.settings import Settings, get_settings
from control_plane.subscriptions import invoicing, repository
from control_plane.subscriptions.gateway import billing_enabled, payment_gateway
from control_plane.subscriptions.models import Invoice, InvoiceState, StripeEvent, Subscription
from control_plane.subscriptions.tasks import defer_billing

ACTOR = "stripe-webhook"
UNSETTLED = frozenset({BillingStatus.past_due, BillingStatus.unpaid})


def receive(session: Session, event: WebhookEvent, now: datetime) -> bool:
    """Store a verified event in the inbox (once per id) and commit; True while it still awaits applying."""
    session.execute(
        insert(StripeEvent)
        .values(
            id=event.id,
            type=event.type,
            object_type=event.object_type,
            object_id=event.object_id,
            received_at=now,
        )
        .on_conflict_do_nothing(index_elements=[StripeEvent.id])
    )
    processed_at = session.scalar(select(StripeEvent.processed_at).where(StripeEvent.id == event.id))
    session.commit()
    return processed_at is None


def apply(event_id: str) -> str:
    """Apply one inbox event (nothing once it was applied) and mark it processed; says what it did."""
    settings = get_settings()
    with session_scope() as session:
        event = session.get(StripeEvent, event_id)
        if event is None or event.processed_at is not None:
            return "nothing to apply"
        object_type, object_id = event.object_type, event.object_id
    did = _apply(settings, object_type, object_id) if billing_enabled(settings) else "billing is off"
    with session_scope() as session:
        session.execute(
            update(StripeEvent)
            .where(StripeEvent.id == event_id, StripeEvent.processed_at.is_(None))
            .values(processed_at=utcnow())
        )
    return did


def _apply(settings: Settings, object_type: str, object_id: str) -> str:
    if object_type == "invoice":
        return sync_invoice(settings, object_id)
    if object_type == "payment_intent":
        invoice_id = payment_gateway(settings).invoice_of_payment(object_id)
        return sync_invoice(settings, invoice_id) if invoice_id else "a payment of no invoice"
    if object_type == "customer":
        return sync_customer(settings, object_id)
    return f"{object_type} events change nothing"


def sync_invoice(settings: Settings, gateway_invoice_id: str) -> str:
    """Take Stripe's word on whether one of our invoices is paid, then ask for its organization's billing run
    where that changed something or its status waits on a payment."""
    try:
        held = payment_gateway(settings).retrieve_invoice(gateway_invoice_id)
    except stripe.InvalidRequestError as e:
        if e.http_status == 404:
            return "an invoice Stripe no longer has"
        raise
    with session_scope() as session:
        invoice = _our_invoice(session, held)
        if invoice is None:
            return contract_invoice(session, held, _uuid(held.invoice_key), utcnow()) or "not one of our invoices"
        organization_id, was = invoice.organization_id, invoice.state
        if invoice.state is not InvoiceState.pending and held.status is InvoiceStatus.paid:
            invoicing.record_gateway_state(invoice, held, utcnow())
        sub = repository.get(session, organization_id)
        changed = invoice.state is not was
        settle = changed or invoice.state is InvoiceState.pending or (sub is not None and sub.status in UNSETTLED)
    if settle:
        defer_billing(organization_id)
    return f"invoice {invoice.id} {'is now' if changed else 'stays'} {invoice.state.value}"


def _our_invoice(session: Session, held: GatewayInvoice) -> Invoice | None:
    """Our invoice of a Stripe invoice, row-locked: by our key (its id) where Stripe holds one, else by its id."""
    key = _uuid(held.invoice_key)
    if key is not None:
        invoice = session.get(Invoice, key, with_for_update=True)
        if invoice is not None and invoice.gateway_invoice_id in (None, held.id):
            return invoice
        return None
    query = select(Invoice).where(Invoice.gateway_invoice_id == held.id).with_for_update()
    return session.scalars(query).one_or_none()


def sync_customer(settings: Settings, customer_id: str) -> str:
    """Make the customer's default payment method at Stripe the organization's card, if it differs.

    Stripe is read under the subscription's row lock, the lock :func:`control_plane.subscriptions.service.add_card`
    records under once it has written to Stripe: whichever commits last, the card recorded is the one Stripe holds."""
    gateway = payment_gateway(settings)
    with session_scope() as session:
        query = select(Subscription).where(Subscription.customer_id == customer_id).with_for_update()
        sub = session.scalars(query).first()
        if sub is None:
            return "not one of our customers"
        customer = gateway.retrieve_customer(customer_id)
        if customer is None:
            return "a customer Stripe no longer has"
        payment_method = customer.default_payment_method
        if sub.payment_method_id == payment_method:
            return "card unchanged"
        card = gateway.describe_card(payment_method) if payment_method is not None else None
        record_card(session, sub, card, utcnow())
        organization_id = sub.organization_id
    defer_billing(organization_id)
    return "card synced from Stripe"


def record_card(session: Session, sub: Subscription, card: Card | None, now: datetime) -> None:
    """Record the card Stripe holds as the customer's default (``None``: it has none), audited; a new card is
    tried on the open invoices by the next billing run, as one added on the billing page."""
    sub.payment_method_id = card.payment_method_id if card is not None else None
    sub.card_brand = card.brand[:30] if card is not None else None
    sub.card_last4 = card.last4 if card is not None else None
    if card is not None:
        sub.payment_method_added_at = now
    sub.next_run_at = now
    sub.updated_at = now
    audit.record(
        session,
        actor=ACTOR,
        action="billing.card_synced",
        target_type="organization",
        target_id=sub.organization_id,
        organization_id=sub.organization_id,
        after={"card_brand": sub.card_brand, "card_last4": sub.card_last4},
    )


def unapplied(session: Session, received_before: datetime, limit: int) -> list[str]:
    """Ids of events received before ``received_before`` and not applied yet, oldest first."""
    query = (
        select(StripeEvent.id)
        .where(StripeEvent.processed_at.is_(None), StripeEvent.received_at < received_before)
        .order_by(StripeEvent.received_at)
        .limit(limit)
    )
    return list(session.scalars(query))


def _uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None
