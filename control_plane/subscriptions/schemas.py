"""Self-serve billing request and response bodies (never a gateway secret: only the publishable key)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from billing.engine.status import BillingStatus
from control_plane.core.settings import Settings
from control_plane.subscriptions.models import Invoice, InvoiceState, Subscription
from control_plane.subscriptions.service import BillingSummary

PAYMENT_METHOD_ID = r"^pm_[A-Za-z0-9_]{1,200}$"
PaymentMethodId = Annotated[
    str, Field(pattern=PAYMENT_METHOD_ID, max_length=203, description="A Stripe PaymentMethod id, from Stripe.js.")
]


class CardIn(BaseModel):
    """The card to bill from now on: a payment method Stripe.js created."""

    model_config = ConfigDict(extra="forbid")

    payment_method_id: PaymentMethodId


class CardOut(BaseModel):
    """What is shown of the card on file."""

    brand: str
    last4: str


class InvoiceLineOut(BaseModel):
    """Consecutive days with the same seats, priced in the period's days."""

    first_day: date
    days: int
    seats: int
    unit_amount_cents: int = Field(description="The price of one seat for a whole period.")
    days_in_period: int
    amount_cents: int


class InvoiceOut(BaseModel):
    """One period's invoice: amount, lines, and how collecting it goes."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    period: str = Field(description="The calendar month billed, e.g. 2026-02.")
    first_day: date
    end_day: date = Field(description="The day after the last day billed.")
    amount_cents: int
    currency: str
    state: InvoiceState
    attempts: int = Field(description="Charge attempts so far.")
    last_failure: str | None = Field(description="Why the last charge failed (the issuer's message).")
    paid_at: datetime | None
    final: bool = Field(description="The last invoice after a cancellation.")
    lines: list[InvoiceLineOut]


class BillingOut(BaseModel):
    """An organization's subscription as its owners and billing members see it."""

    organization_id: uuid.UUID
    status: BillingStatus
    trial_ends_at: datetime
    cancel_at: datetime | None = Field(description="When a requested cancellation takes effect.")
    suspended_at: datetime | None = Field(description="Since when billing keeps the workspaces read-only.")
    card: CardOut | None
    invoices: list[InvoiceOut] = Field(description="Newest first.")
    publishable_key: str = Field(description="Stripe's publishable key for Stripe.js.")
    stripe_js_url: str = Field(description="Where Stripe.js is loaded from.")


def card_out(sub: Subscription) -> CardOut | None:
    """The card on file, if any."""
    if sub.payment_method_id is None:
        return None
    return CardOut(brand=sub.card_brand or "card", last4=sub.card_last4 or "")


def invoices_out(invoices: list[Invoice]) -> list[InvoiceOut]:
    """Invoices as the API shows them."""
    return [InvoiceOut.model_validate(invoice) for invoice in invoices]


def billing_out(summary: BillingSummary, settings: Settings) -> BillingOut:
    """The billing view of ``summary``."""
    sub = summary.subscription
    return BillingOut(
        organization_id=sub.organization_id,
        status=sub.status,
        trial_ends_at=sub.trial_ends_at,
        cancel_at=sub.cancel_at,
        suspended_at=sub.suspended_at,
        card=card_out(sub),
        invoices=invoices_out(summary.invoices),
        publishable_key=settings.stripe_publishable_key,
        stripe_js_url=settings.stripe_js_url,
    )
