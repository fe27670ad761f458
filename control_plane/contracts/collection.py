"""Contract invoices at the payment gateway: each created once as an invoice paid by bank transfer within the
payment terms (Stripe's ``send_invoice`` collection), and told of the payments recorded here. Only where billing
is on (a gateway is configured); without one the invoices exist here alone and finance records their payments."""

from __future__ import annotations

import math
import uuid
from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from billing.gateway import ChargeLine, GatewayInvoice, InvoiceRequest, InvoiceStatus
from control_plane.contracts import repository
from control_plane.contracts.models import ContractInvoice, ContractInvoiceKind, ContractInvoiceState
from control_plane.contracts.service import mark_paid
from control_plane.core.db import session_scope
from control_plane.core.settings import Settings
from control_plane.organizations.models import Organization
from control_plane.subscriptions.gateway import payment_gateway

ACTOR = "stripe-webhook"


def contract_customer_key(organization_id: uuid.UUID) -> str:
    """The key of the organization's contract customer at the gateway: one of its own, apart from a self-serve
    customer the organization may have had (whose invoices the billing reconciliation compares)."""
    return f"{organization_id}:contract"


def push(settings: Settings, contract_id: uuid.UUID, now: datetime) -> int:
    """Create the contract's pending invoices at the gateway, committing after each; tell it of the payments
    recorded since. Returns how many invoices the gateway now holds that it did not."""
    created = 0
    for invoice_id in _pending(contract_id):
        created += _create(settings, invoice_id, now)
    for invoice_id in _unsettled(contract_id):
        _settle(settings, invoice_id)
    return created


def _pending(contract_id: uuid.UUID) -> list[uuid.UUID]:
    with session_scope() as session:
        rows = repository.unpaid(session, contract_id)
        return [row.id for row in rows if row.state is ContractInvoiceState.pending]


def _unsettled(contract_id: uuid.UUID) -> list[uuid.UUID]:
    with session_scope() as session:
        return [row.id for row in repository.unsettled_at_gateway(session, contract_id)]


def _create(settings: Settings, invoice_id: uuid.UUID, now: datetime) -> int:
    gateway = payment_gateway(settings)
    with session_scope() as session:
        request = _request(session, settings, invoice_id, now)
    if request is None:
        return 0
    held = gateway.create_invoice(request)  # finds what an interrupted call made, by our key
    with session_scope() as session:
        invoice = repository.invoice(session, invoice_id, for_update=True)
        if invoice is None or invoice.gateway_invoice_id is not None:
            return 0
        invoice.gateway_invoice_id = held.id
        if invoice.state is ContractInvoiceState.pending:
            invoice.state = ContractInvoiceState.open
    return 1


def _request(session: Session, settings: Settings, invoice_id: uuid.UUID, now: datetime) -> InvoiceRequest | None:
    invoice = repository.invoice(session, invoice_id)
    contract = repository.get(session, invoice.contract_id) if invoice is not None else None
    organization = session.get(Organization, contract.organization_id) if contract is not None else None
    if invoice is None or contract is None or organization is None or invoice.state is not ContractInvoiceState.pending:
        return None
    customer = payment_gateway(settings).ensure_customer(
        contract_customer_key(contract.organization_id), contract.billing_contact_email, organization.name
    )
    days = max(1, math.ceil((invoice.due_at - now) / timedelta(days=1)))
    return InvoiceRequest(
        str(invoice.id),
        customer.id,
        contract.currency,
        _description(invoice),
        tuple(_charge_line(invoice, index, line) for index, line in enumerate(invoice.lines)),
        days_until_due=days,
    )


def _description(invoice: ContractInvoice) -> str:
    if invoice.kind is ContractInvoiceKind.annual:
        return f"Canopy Enterprise, contract year {invoice.contract_year}"
    return f"Canopy Enterprise true-forward, contract year {invoice.contract_year} after quarter {invoice.quarter}"


def _charge_line(invoice: ContractInvoice, index: int, line: dict[str, object]) -> ChargeLine:
    return ChargeLine(
        f"{invoice.id}:{index}",
        int(str(line["amount_cents"])),
        str(line["description"]),
        date.fromisoformat(str(line["first_day"])),
        int(str(line["days"])),
        int(str(line["seats"])),
        int(str(line["unit_amount_cents"])),
    )


def _settle(settings: Settings, invoice_id: uuid.UUID) -> None:
    with session_scope() as session:
        invoice = repository.invoice(session, invoice_id)
        if invoice is None or invoice.gateway_invoice_id is None:
            return
        gateway_id, key = invoice.gateway_invoice_id, str(invoice.id)
    payment_gateway(settings).mark_paid_out_of_band(gateway_id, key)
    with session_scope() as session:
        invoice = repository.invoice(session, invoice_id, for_update=True)
        if invoice is not None:
            invoice.gateway_settled = True


def sync_gateway_invoice(session: Session, held: GatewayInvoice, key: uuid.UUID | None, now: datetime) -> str | None:
    """Take the gateway's word that a contract invoice is paid (its ``invoice.paid`` event); ``None`` when ``held``
    is not a contract invoice."""
    invoice = repository.invoice(session, key, for_update=True) if key is not None else None
    if invoice is None:
        invoice = repository.invoice_by_gateway_id(session, held.id)
    if invoice is None or invoice.gateway_invoice_id not in (None, held.id):
        return None
    if held.status is InvoiceStatus.paid and invoice.state is not ContractInvoiceState.paid:
        mark_paid(session, invoice, ACTOR, f"stripe:{held.id}", now)
        invoice.gateway_settled = True
    return f"contract invoice {invoice.id} is {invoice.state.value}"
