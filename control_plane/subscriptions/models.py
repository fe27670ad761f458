"""Tables of self-serve billing: each organization's subscription, seat snapshots, invoices, the Stripe event
inbox, the notices sent, and the reconciliation reports."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Date, DateTime, Enum, ForeignKey, Identity, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from billing.engine.status import BillingStatus
from control_plane.core.db import Base
from control_plane.core.types import OptionalTimestamp, Timestamp, UUIDPk


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(cls, name=name, values_callable=lambda e: [m.value for m in e])


class Subscription(Base):
    """An organization's self-serve plan: its billing status, trial, paid time, payment method and dunning."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        Index("ix_subscriptions_next_run_at", "next_run_at"),
        Index("ix_subscriptions_customer_id", "customer_id"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), primary_key=True
    )
    status: Mapped[BillingStatus] = mapped_column(_enum(BillingStatus, "billing_status"))
    trial_started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    trial_ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Paid time: [[start, end or null], ...] as ISO 8601 times; the last interval is open while the plan is paid.
    paid_intervals: Mapped[list[list[str | None]]] = mapped_column(JSONB, default=list)
    cancel_at: Mapped[OptionalTimestamp]  # when a requested cancellation takes effect (the period's end)
    customer_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    payment_method_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    payment_method_added_at: Mapped[OptionalTimestamp]  # open invoices are charged again after a new card
    card_brand: Mapped[str | None] = mapped_column(String(30), nullable=True)
    card_last4: Mapped[str | None] = mapped_column(String(4), nullable=True)
    suspended_at: Mapped[OptionalTimestamp]  # since when billing has the workspaces suspended
    next_run_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # when the billing run looks again
    created_at: Mapped[Timestamp]
    updated_at: Mapped[Timestamp]


class SnapshotReason(enum.StrEnum):
    """Why a seat snapshot was taken."""

    daily = "daily"
    billing_event = "billing_event"


class SeatSnapshot(Base):
    """The seats (activated, non-bot users) of one workspace at one moment."""

    __tablename__ = "seat_snapshots"
    __table_args__ = (
        Index("ix_seat_snapshots_org_taken", "organization_id", "taken_at"),
        Index("uq_seat_snapshots_daily", "workspace_id", "day", unique=True, postgresql_where=text("reason = 'daily'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="RESTRICT"))
    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="RESTRICT"))
    taken_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    day: Mapped[date] = mapped_column(Date)
    seats: Mapped[int] = mapped_column(Integer)
    reason: Mapped[SnapshotReason] = mapped_column(_enum(SnapshotReason, "seat_snapshot_reason"))


class InvoiceState(enum.StrEnum):
    """Our invoice's state: ``pending`` until the gateway holds it, then the gateway's collection state."""

    pending = "pending"
    open = "open"
    paid = "paid"


class Invoice(Base):
    """The one invoice of an organization and period: our lines and amount, and how collecting it goes."""

    __tablename__ = "invoices"
    __table_args__ = (
        Index("uq_invoices_org_period", "organization_id", "period", unique=True),
        Index("ix_invoices_state", "state"),
        Index("ix_invoices_gateway_invoice_id", "gateway_invoice_id"),
    )

    id: Mapped[UUIDPk]  # the invoice key the gateway finds it by
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="RESTRICT"))
    period: Mapped[str] = mapped_column(String(7))  # "2026-02"
    first_day: Mapped[date] = mapped_column(Date)
    end_day: Mapped[date] = mapped_column(Date)  # exclusive
    currency: Mapped[str] = mapped_column(String(3))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    final: Mapped[bool] = mapped_column(default=False)  # the last invoice after a cancellation
    state: Mapped[InvoiceState] = mapped_column(_enum(InvoiceState, "invoice_state"))
    gateway_invoice_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_attempt_at: Mapped[OptionalTimestamp]
    first_failure_at: Mapped[OptionalTimestamp]
    last_failure: Mapped[str | None] = mapped_column(Text, nullable=True)
    paid_at: Mapped[OptionalTimestamp]
    created_at: Mapped[Timestamp]
    updated_at: Mapped[Timestamp]


class StripeEvent(Base):
    """The webhook inbox: each Stripe event once, by id, until a job has applied it."""

    __tablename__ = "stripe_events"
    __table_args__ = (
        Index("ix_stripe_events_unprocessed", "received_at", postgresql_where=text("processed_at IS NULL")),
    )

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    object_type: Mapped[str] = mapped_column(String(50))
    object_id: Mapped[str] = mapped_column(String(255))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    processed_at: Mapped[OptionalTimestamp]


class BillingNotice(Base):
    """A billing mail sent to an organization (its key makes each notice go out once)."""

    __tablename__ = "billing_notices"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class BillingReconciliation(Base):
    """One comparison of Stripe with Canopy: when, how many organizations, what drifted."""

    __tablename__ = "billing_reconciliations"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    ran_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    organizations: Mapped[int] = mapped_column(Integer)
    drift: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
