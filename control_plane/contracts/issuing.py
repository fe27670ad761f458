"""Issuing contract invoices: the annual invoice of each contract year and the quarterly true-forward.

Each invoice row is unique per contract, kind, year and quarter and is inserted with ``ON CONFLICT DO NOTHING`` in
the transaction that raises the seats purchased, committed before any gateway call: a rerun, or a run after a crash
at any point, adds nothing.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from billing.engine.contracts import (
    Quarter,
    annual_invoice_years,
    midnight,
    peak_seats,
    quarter,
    true_forward_cents,
    true_forward_quarters,
    year_start,
)
from billing.engine.money import format_cents
from control_plane.contracts import notices, repository
from control_plane.contracts.models import Contract, ContractInvoiceKind, ContractInvoiceState


def issue_annual(session: Session, contract: Contract, year: int, now: datetime) -> bool:
    """The annual invoice of contract year ``year`` for the seats purchased now, unless it exists; due the payment
    terms after the year's start (or after now, if later)."""
    first, end = year_start(contract.start_date, year), year_start(contract.start_date, year + 1)
    seats, unit = contract.seats_purchased, contract.annual_price_per_seat_cents
    line = _line(f"{seats} seats x {format_cents(unit, contract.currency)} per seat per year", first, end, seats, unit)
    return _issue(session, contract, ContractInvoiceKind.annual, year, 0, seats, line, max(now, midnight(first)), now)


def issue_due_annual(session: Session, contract: Contract, now: datetime) -> int:
    """The annual invoices of the contract years begun by ``now`` that lack one; how many were issued."""
    years = annual_invoice_years(contract.start_date, contract.end_date, now)
    return sum(issue_annual(session, contract, year, now) for year in years)


def issue_due_true_forwards(session: Session, contract: Contract, now: datetime) -> int:
    """The true-forward of each ended quarter 1..3 without one, in order: where the quarter's peak seats exceed
    the seats purchased, an invoice for the overage and the seats purchased raised to the peak (the caller holds
    the contract's row lock); how many were issued."""
    issued = 0
    for span in true_forward_quarters(contract.start_date, contract.end_date, now):
        kind = ContractInvoiceKind.true_forward
        if repository.has_invoice(session, contract.id, kind, span.year, span.number):
            continue
        daily = repository.daily_seats(session, contract.organization_id, span.start, span.end)
        peak = peak_seats(daily, span)
        if peak > contract.seats_purchased and _true_forward(session, contract, span, peak, now):
            contract.seats_purchased = peak
            contract.updated_at = now
            issued += 1
    return issued


def _true_forward(session: Session, contract: Contract, span: Quarter, peak: int, now: datetime) -> bool:
    overage, unit = peak - contract.seats_purchased, contract.annual_price_per_seat_cents
    year_end = quarter(contract.start_date, span.year, 4).end
    description = (
        f"True-forward: peak {peak} seats in quarter {span.number} less {contract.seats_purchased} purchased = "
        f"{overage} seats x {format_cents(unit, contract.currency)} x {span.remaining_quarters}/4 of a year"
    )
    line = _line(description, span.end, year_end, overage, unit, true_forward_cents(overage, unit, span))
    return _issue(session, contract, ContractInvoiceKind.true_forward, span.year, span.number, overage, line, now, now)


def _line(
    description: str, first: date, end: date, seats: int, unit_cents: int, amount_cents: int | None = None
) -> dict[str, object]:
    return {
        "description": description,
        "first_day": first.isoformat(),
        "days": (end - first).days,
        "seats": seats,
        "unit_amount_cents": unit_cents,
        "amount_cents": seats * unit_cents if amount_cents is None else amount_cents,
    }


def _issue(
    session: Session,
    contract: Contract,
    kind: ContractInvoiceKind,
    year: int,
    number: int,
    seats: int,
    line: dict[str, object],
    terms_from: datetime,
    now: datetime,
) -> bool:
    invoice_id = repository.add_invoice(
        session,
        {
            "contract_id": contract.id,
            "kind": kind,
            "contract_year": year,
            "quarter": number,
            "seats": seats,
            "amount_cents": line["amount_cents"],
            "lines": [line],
            "issued_at": now,
            "due_at": terms_from + timedelta(days=contract.payment_terms_days),
            "state": ContractInvoiceState.pending,
            "gateway_settled": False,
        },
    )
    invoice = repository.invoice(session, invoice_id) if invoice_id is not None else None
    if invoice is None:  # that kind, year and quarter was issued before
        return False
    notices.issued(session, contract, invoice, now)
    return True
