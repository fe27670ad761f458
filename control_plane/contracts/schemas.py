"""Enterprise contract request and response bodies."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from billing.engine.contracts import LicencePhase, grace_end
from control_plane.contracts.models import ContractInvoiceKind, ContractInvoiceState

if TYPE_CHECKING:
    from control_plane.contracts.service import ContractView


class ContractCreate(BaseModel):
    """A 12-month contract: seats purchased at an annual price per seat, from a start date, payable by bank
    transfer within the payment terms."""

    model_config = ConfigDict(extra="forbid")

    seats_purchased: int = Field(ge=1, le=1_000_000)
    annual_price_per_seat_cents: int = Field(ge=1, le=10**9)
    currency: Literal["usd"] = "usd"
    start_date: date
    payment_terms_days: int = Field(default=30, ge=0, le=180)
    billing_contact_email: EmailStr = Field(max_length=320)
    billing_contact_name: str = Field(min_length=1, max_length=200)


class ContractCreateIn(ContractCreate):
    """A contract for an existing organization (sales, admin)."""

    organization_id: uuid.UUID


class PaymentIn(BaseModel):
    """A payment received for an invoice (a bank transfer's reference)."""

    model_config = ConfigDict(extra="forbid")

    reference: str = Field(min_length=1, max_length=200)


class ContractInvoiceOut(BaseModel):
    """One annual or true-forward invoice."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    contract_id: uuid.UUID
    kind: ContractInvoiceKind
    contract_year: int
    quarter: int = Field(description="0 for an annual invoice; the quarter that ended (1..3) for a true-forward.")
    seats: int
    amount_cents: int
    lines: list[dict[str, Any]]
    issued_at: datetime
    due_at: datetime
    state: ContractInvoiceState
    paid_at: datetime | None
    payment_reference: str | None


class LicenceOut(BaseModel):
    """The licence the contract gives its workspaces."""

    phase: LicencePhase
    starts_on: date
    expires_on: date = Field(description="The contract's end (exclusive).")
    grace_ends_at: datetime
    read_only: bool


class ContractOut(BaseModel):
    """A contract and where it stands."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    organization_id: uuid.UUID
    seats_purchased: int
    annual_price_per_seat_cents: int
    currency: str
    start_date: date
    end_date: date
    payment_terms_days: int
    billing_contact_email: str
    billing_contact_name: str
    created_at: datetime


class ContractDetail(ContractOut):
    """A contract with its invoices, the seats in use and its licence."""

    seats_used: int = Field(description="Activated seats of the organization's Enterprise workspaces (latest count).")
    licence: LicenceOut
    invoices: list[ContractInvoiceOut]


def contract_detail(view: ContractView) -> ContractDetail:
    """The response body of a contract's view."""
    contract = view.contract
    return ContractDetail(
        **ContractOut.model_validate(contract).model_dump(),
        seats_used=view.seats_used,
        licence=LicenceOut(
            phase=view.phase,
            starts_on=contract.start_date,
            expires_on=contract.end_date,
            grace_ends_at=grace_end(contract.end_date),
            read_only=view.phase is LicencePhase.read_only,
        ),
        invoices=[ContractInvoiceOut.model_validate(row) for row in view.invoices],
    )
