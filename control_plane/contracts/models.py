"""Tables of Enterprise contracts: the contract of an organization, its invoices, and the notices sent."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Date, DateTime, Enum, ForeignKey, Index, Integer, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.core.db import Base
from control_plane.core.types import OptionalTimestamp, Timestamp, UUIDPk


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(cls, name=name, values_callable=lambda e: [m.value for m in e])


class Contract(Base):
    """An organization's Enterprise contract (one per organization): seats purchased at an annual price per seat,
    from ``start_date`` to ``end_date`` (exclusive; 12 months, plus 12 per renewal)."""

    __tablename__ = "contracts"

    id: Mapped[UUIDPk]
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="RESTRICT"), unique=True)
    seats_purchased: Mapped[int] = mapped_column(Integer)
    annual_price_per_seat_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date] = mapped_column(Date)
    payment_terms_days: Mapped[int] = mapped_column(Integer)
    billing_contact_email: Mapped[str] = mapped_column(String(320))
    billing_contact_name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[Timestamp]
    updated_at: Mapped[Timestamp]


class ContractInvoiceKind(enum.StrEnum):
    """An annual invoice (at each contract year's start) or a quarterly true-forward."""

    annual = "annual"
    true_forward = "true_forward"


class ContractInvoiceState(enum.StrEnum):
    """``pending`` until the gateway holds it (or without a gateway), ``open`` awaiting the transfer, ``paid``."""

    pending = "pending"
    open = "open"
    paid = "paid"


class ContractInvoice(Base):
    """One invoice of a contract, unique per kind, contract year and quarter (0 for the annual one): the row is
    committed before any gateway call, so each exists exactly once whatever crashes or reruns."""

    __tablename__ = "contract_invoices"
    __table_args__ = (
        Index("uq_contract_invoices_once", "contract_id", "kind", "contract_year", "quarter", unique=True),
        Index("ix_contract_invoices_gateway_invoice_id", "gateway_invoice_id"),
    )

    id: Mapped[UUIDPk]  # the invoice key the gateway finds it by
    contract_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contracts.id", ondelete="RESTRICT"))
    kind: Mapped[ContractInvoiceKind] = mapped_column(_enum(ContractInvoiceKind, "contract_invoice_kind"))
    contract_year: Mapped[int] = mapped_column(Integer)
    quarter: Mapped[int] = mapped_column(Integer)
    seats: Mapped[int] = mapped_column(Integer)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    state: Mapped[ContractInvoiceState] = mapped_column(_enum(ContractInvoiceState, "contract_invoice_state"))
    gateway_invoice_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    gateway_settled: Mapped[bool] = mapped_column(default=False)  # the gateway knows of the payment recorded here
    paid_at: Mapped[OptionalTimestamp]
    payment_reference: Mapped[str | None] = mapped_column(String(200), nullable=True)


class ContractNotice(Base):
    """A contract mail sent (its key makes each go out once)."""

    __tablename__ = "contract_notices"

    contract_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contracts.id", ondelete="RESTRICT"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
