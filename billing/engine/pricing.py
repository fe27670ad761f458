"""Invoice lines from seats per day, and the Enterprise true-forward.

**Professional** ($10 per seat per month, monthly in arrears, daily proration): the exact amount of an
invoice span is the sum over its billed days of ``seats x unit price / days in the period``; the invoice
total is that sum rounded once, half up (:mod:`billing.engine.money`). Consecutive days with the same seats
make one line (seats, days, unit price); a line's amount is its share of the rounded total by
:func:`~billing.engine.money.allocate`, so the lines add up to the total exactly. Days with no seat cost
nothing and make no line.

**Enterprise** contracts are annual per seat and sit beside it: each completed quarter of a contract year
whose peak seats exceed the seats purchased is charged forward for the rest of the year,
``(peak - purchased) x annual unit price x remaining quarters / 4``, rounded the same way.
"""

from __future__ import annotations

import calendar
import enum
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from fractions import Fraction

from billing.engine.money import allocate, round_half_up
from billing.engine.periods import InvoiceSpan

QUARTERS_PER_YEAR = 4


class Interval(enum.StrEnum):
    """How often a seat price recurs."""

    month = "month"
    year = "year"


@dataclass(frozen=True)
class SeatPrice:
    """A recurring price per seat, in integer cents of ``currency``."""

    plan: str
    unit_amount_cents: int
    interval: Interval
    currency: str = "usd"


PROFESSIONAL = SeatPrice(plan="professional", unit_amount_cents=1000, interval=Interval.month)


@dataclass(frozen=True)
class InvoiceLine:
    """``seats`` for ``days`` consecutive days from ``first_day``, at ``unit_amount_cents`` per seat-month."""

    first_day: date
    days: int
    seats: int
    unit_amount_cents: int
    days_in_period: int
    amount_cents: int

    @property
    def last_day(self) -> date:
        """The line's last billed day (inclusive)."""
        return self.first_day + timedelta(days=self.days - 1)

    @property
    def exact_amount(self) -> Fraction:
        """The line's amount before rounding, in cents."""
        return Fraction(self.seats * self.unit_amount_cents * self.days, self.days_in_period)


@dataclass(frozen=True)
class InvoiceDraft:
    """What one invoice span owes: its lines and their total."""

    span: InvoiceSpan
    price: SeatPrice
    lines: tuple[InvoiceLine, ...]

    @property
    def total_cents(self) -> int:
        """The invoice's amount: the sum of its lines."""
        return sum(line.amount_cents for line in self.lines)


def price_span(span: InvoiceSpan, daily_seats: Sequence[int], price: SeatPrice = PROFESSIONAL) -> InvoiceDraft:
    """The invoice of ``span`` given the seats of each of its days (:func:`billing.engine.seats.seats_per_day`)."""
    if price.interval is not Interval.month:
        raise ValueError(f"daily proration prices monthly seats, not {price.interval}")
    if len(daily_seats) != span.days:
        raise ValueError(f"{len(daily_seats)} seat counts for {span.days} billed days")
    runs: list[tuple[date, int, int]] = []
    offset = 0
    for seats, group in itertools.groupby(daily_seats):
        days = len(list(group))
        if seats:
            runs.append((span.first_day + timedelta(days=offset), days, seats))
        offset += days
    exact = [Fraction(seats * price.unit_amount_cents * days, span.period.days) for _, days, seats in runs]
    lines = tuple(
        InvoiceLine(first, days, seats, price.unit_amount_cents, span.period.days, cents)
        for (first, days, seats), cents in zip(runs, allocate(exact), strict=True)
    )
    return InvoiceDraft(span, price, lines)


@dataclass(frozen=True)
class EnterpriseContract:
    """An annual contract: ``seats_purchased`` at ``annual_unit_amount_cents`` per seat-year from ``start``."""

    start: date
    seats_purchased: int
    annual_unit_amount_cents: int
    currency: str = "usd"


@dataclass(frozen=True)
class TrueForward:
    """The charge after completed ``quarter``: ``added_seats`` for ``remaining_quarters`` of the contract year."""

    quarter: int
    added_seats: int
    remaining_quarters: int
    amount_cents: int
    seats_purchased_after: int


def true_forward(contract: EnterpriseContract, peak_seats: int, quarter: int) -> TrueForward:
    """The true-forward due after completed ``quarter`` (1-4) of a contract year whose peak was ``peak_seats``."""
    if not 1 <= quarter <= QUARTERS_PER_YEAR:
        raise ValueError(f"a contract year has quarters 1 to {QUARTERS_PER_YEAR}, not {quarter}")
    added = max(0, peak_seats - contract.seats_purchased)
    remaining = QUARTERS_PER_YEAR - quarter
    exact = Fraction(added * contract.annual_unit_amount_cents * remaining, QUARTERS_PER_YEAR)
    return TrueForward(quarter, added, remaining, round_half_up(exact), contract.seats_purchased + added)


def contract_quarter_start(contract: EnterpriseContract, year: int, quarter: int) -> date:
    """The first day of ``quarter`` (1-4) of contract year ``year`` (0-based), by anniversary months.

    A contract starting on the 31st has quarters starting on the last day of shorter months.
    """
    months = year * 12 + (quarter - 1) * 3
    month_index = contract.start.month - 1 + months
    y, m = contract.start.year + month_index // 12, month_index % 12 + 1
    return date(y, m, min(contract.start.day, calendar.monthrange(y, m)[1]))
