"""A contract invoice paid at the gateway: Stripe's ``invoice.paid`` event, applied as the workers apply it (the
inbox, then reading the invoice from Stripe again), records the payment once; a self-serve invoice's path is
untouched. localstripe cannot take a transfer, so the customer pays it by card through the SDK here."""

from __future__ import annotations

import uuid

import stripe
from sqlalchemy import select

from billing.webhooks import WebhookEvent
from control_plane.audit.models import AuditEntry
from control_plane.contracts.models import ContractInvoice, ContractInvoiceState
from control_plane.core.authz import Role
from control_plane.core.clock import utcnow
from control_plane.core.db import session_scope
from control_plane.subscriptions import webhooks
from control_plane.workspaces.models import Tier
from tests.billed_plane import BilledPlane
from tests.contracts.conftest import contract_run


def test_an_invoice_paid_event_records_the_contract_payment_once(
    billed: BilledPlane, stripe_client: stripe.StripeClient
) -> None:
    plane = billed.plane
    workspace_id = plane.create_workspace("ctevent", tier=Tier.enterprise)
    org = plane.row(workspace_id).organization_id
    body = {
        "organization_id": str(org),
        "seats_purchased": 3,
        "annual_price_per_seat_cents": 50_000,
        "start_date": utcnow().date().isoformat(),
        "billing_contact_email": "ap@ctevent.example",
        "billing_contact_name": "AP",
    }
    contract = plane.api.post("/api/v1/contracts", json=body, headers=plane.staff_headers(Role.sales)).json()
    contract_run(uuid.UUID(contract["id"]))
    invoice_id = uuid.UUID(contract["invoices"][0]["id"])
    with session_scope() as session:
        row = session.get(ContractInvoice, invoice_id)
        assert row is not None and row.gateway_invoice_id is not None
        gateway_id = row.gateway_invoice_id
    held = stripe_client.v1.invoices.retrieve(gateway_id)
    stripe_client.v1.payment_methods.attach("pm_card_visa", {"customer": str(held.customer)})
    stripe_client.v1.customers.update(
        str(held.customer), {"invoice_settings": {"default_payment_method": "pm_card_visa"}}
    )
    assert stripe_client.v1.invoices.pay(gateway_id).status == "paid"

    for delivery in ("evt_ctevent_1", "evt_ctevent_2"):  # the event, and a second event about the same invoice
        with session_scope() as session:
            event = WebhookEvent(delivery, "invoice.paid", 0, "invoice", gateway_id)
            assert webhooks.receive(session, event, utcnow())
        assert webhooks.apply(delivery).startswith(f"contract invoice {invoice_id} is paid")

    with session_scope() as session:
        row = session.get(ContractInvoice, invoice_id)
        assert row is not None and row.state is ContractInvoiceState.paid
        assert row.payment_reference == f"stripe:{gateway_id}"
        paid = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "contract_invoice.paid", AuditEntry.organization_id == org)
        ).all()
        assert len(paid) == 1 and paid[0].actor == "stripe-webhook"
