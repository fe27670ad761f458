"""The payment gateway interface: what billing asks of a payment provider, and nothing more.

Canopy computes what is owed (:mod:`billing.engine`); the gateway holds customers and their default payment
method and collects invoices made of Canopy's lines. Exactly-once rests on our database (one invoice row per
organization and period, whose id is the ``invoice_key`` here) and on the gateway finding what an interrupted
call already created; every mutating call also carries a deterministic idempotency key
(:func:`idempotency_key`).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Protocol

from billing.engine.money import format_cents
from billing.engine.periods import midnight
from billing.engine.pricing import InvoiceDraft, InvoiceLine


class InvoiceStatus(enum.StrEnum):
    """A gateway invoice's status (Stripe's vocabulary)."""

    draft = "draft"
    open = "open"
    paid = "paid"
    void = "void"
    uncollectible = "uncollectible"


@dataclass(frozen=True)
class Customer:
    """The provider's customer of one organization."""

    id: str
    organization_id: str
    default_payment_method: str | None


@dataclass(frozen=True)
class Card:
    """What a customer may see of a card: its brand and last four digits."""

    payment_method_id: str
    brand: str
    last4: str


@dataclass(frozen=True)
class ChargeLine:
    """One invoice line as sent to the provider: our amount, and what it is for."""

    key: str
    amount_cents: int
    description: str
    first_day: date
    days: int
    seats: int
    unit_amount_cents: int


@dataclass(frozen=True)
class InvoiceRequest:
    """An invoice to collect: ``invoice_key`` is our invoice row's id (unique per organization and period).

    ``price_id`` is the provider's catalog entry of the seat price (``ensure_seat_price``), recorded on each line.
    ``days_until_due`` makes it an invoice the customer pays by transfer within that many days (Stripe's
    ``send_invoice`` collection); ``None`` charges the default payment method.
    """

    invoice_key: str
    customer_id: str
    currency: str
    description: str
    lines: tuple[ChargeLine, ...]
    price_id: str | None = None
    days_until_due: int | None = None

    @property
    def total_cents(self) -> int:
        """What the invoice must amount to."""
        return sum(line.amount_cents for line in self.lines)


@dataclass(frozen=True)
class GatewayInvoice:
    """An invoice as the provider holds it."""

    id: str
    invoice_key: str | None
    status: InvoiceStatus
    currency: str
    amount_due: int
    amount_paid: int
    line_amounts: tuple[int, ...]


@dataclass(frozen=True)
class PaymentResult:
    """The outcome of one charge attempt of an invoice."""

    invoice: GatewayInvoice
    failure_message: str | None

    @property
    def succeeded(self) -> bool:
        """Whether the invoice is paid."""
        return self.invoice.status is InvoiceStatus.paid


class GatewayError(Exception):
    """The provider refused a request or holds something Canopy did not expect."""


class PaymentMethodDeclined(GatewayError):
    """The payment method could not be attached (declined by the issuer)."""


class InvalidPaymentMethod(GatewayError):
    """The provider does not know the payment method, or it cannot belong to this customer."""


class PaymentGateway(Protocol):
    """What billing needs of a payment provider."""

    def ensure_customer(self, organization_id: str, email: str, name: str) -> Customer:
        """The organization's customer, created on first use (found again by organization id afterwards)."""
        ...

    def create_card_setup(self, organization_id: str, attempt: str) -> str:
        """The client secret with which the browser saves a card for off-session charges (one per ``attempt``)."""
        ...

    def set_default_payment_method(self, customer_id: str, payment_method_id: str) -> Customer:
        """Attach ``payment_method_id`` to the customer and make it the default for invoices (raises
        :class:`PaymentMethodDeclined` or :class:`InvalidPaymentMethod`)."""
        ...

    def describe_card(self, payment_method_id: str) -> Card:
        """The brand and last four digits of a card payment method."""
        ...

    def create_invoice(self, request: InvoiceRequest) -> GatewayInvoice:
        """The invoice of ``request`` with exactly its lines, created once (a retry finds it and completes it)."""
        ...

    def pay_invoice(self, invoice_id: str, invoice_key: str, attempt: int) -> PaymentResult:
        """Charge the customer's default payment method; ``attempt`` (1, 2, ...) numbers the charge attempts."""
        ...

    def mark_paid_out_of_band(self, invoice_id: str, invoice_key: str) -> GatewayInvoice:
        """Mark an invoice paid outside the gateway (a bank transfer received), where the provider can."""
        ...

    def retrieve_invoice(self, invoice_id: str) -> GatewayInvoice:
        """The invoice as the provider holds it now."""
        ...

    def retrieve_customer(self, customer_id: str) -> Customer | None:
        """The customer as the provider holds it now (``None`` once deleted)."""
        ...

    def customer_invoices(self, customer_id: str) -> Iterator[GatewayInvoice]:
        """Every invoice of the customer, newest first, read a page of many at a time."""
        ...

    def invoice_of_payment(self, payment_intent_id: str) -> str | None:
        """The id of the invoice a payment intent pays (``None``: it pays none, or is unknown)."""
        ...


def idempotency_key(subject: str, purpose: str) -> str:
    """The idempotency key of one mutating call: the same subject and purpose always give the same key."""
    return f"canopy:{subject}:{purpose}"


def invoice_request(
    invoice_key: str, customer_id: str, draft: InvoiceDraft, price_id: str | None = None
) -> InvoiceRequest:
    """The gateway request for an engine invoice draft (one charge line per invoice line)."""
    period = draft.span.period
    description = f"Canopy {draft.price.plan.capitalize()}, {period.start:%B %Y}"
    currency = draft.price.currency
    lines = tuple(_charge_line(invoice_key, index, line, currency) for index, line in enumerate(draft.lines))
    return InvoiceRequest(invoice_key, customer_id, currency, description, lines, price_id)


def _charge_line(invoice_key: str, index: int, line: InvoiceLine, currency: str) -> ChargeLine:
    seats = "seat" if line.seats == 1 else "seats"
    days = "day" if line.days == 1 else "days"
    description = (
        f"{line.seats} {seats} x {line.days} {days} ({line.first_day:%d %b} - {line.last_day:%d %b %Y}) "
        f"at {format_cents(line.unit_amount_cents, currency)} per seat per month of {line.days_in_period} days"
    )
    return ChargeLine(
        f"{invoice_key}:{index}",
        line.amount_cents,
        description,
        line.first_day,
        line.days,
        line.seats,
        line.unit_amount_cents,
    )


def line_period(line: ChargeLine) -> tuple[int, int]:
    """The line's service period as Unix times: 00:00 UTC of its first day to 00:00 after its last."""
    start = midnight(line.first_day)
    return int(start.timestamp()), int((start + timedelta(days=line.days)).timestamp())


def amounts_match(request: InvoiceRequest, invoice: GatewayInvoice) -> bool:
    """Whether the provider's invoice holds exactly the request's amounts."""
    return sorted(invoice.line_amounts) == sorted(line.amount_cents for line in request.lines) and (
        invoice.amount_due == request.total_cents
    )
