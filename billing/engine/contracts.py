"""Enterprise contracts: the term, its quarters, the quarterly true-forward and the licence's phases.

A contract runs 12 months from its start date (``end`` is exclusive) and each renewal adds 12 more. Month
arithmetic is calendar arithmetic from the start date, clamped to the month's end (a contract starting on 31
January has quarters starting on 30 April, 31 July and 31 October), always counted from the start date itself
so clamping never drifts. Quarter ``k`` (1..4) of contract year ``y`` (1-based) covers months
``12(y-1) + 3(k-1)`` to ``12(y-1) + 3k`` from the start.

True-forward at the end of quarter ``q`` (1..3) of a year: the overage (peak seats of that quarter minus the
seats purchased), if positive, is invoiced at ``overage x annual price per seat x (4 - q) / 4``, rounded once,
half up, to whole cents (:func:`billing.engine.money.round_half_up`).

The licence follows the contract's end: notices 60, 30 and 7 days before it, a 10-day grace after it, then
read-only until a renewal moves the end. Times are UTC midnights of the dates. Standard library only, no clock.
"""

from __future__ import annotations

import calendar
import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction

from billing.engine.money import round_half_up

TERM_MONTHS = 12
QUARTERS_PER_YEAR = 4
MONTHS_PER_QUARTER = 3
GRACE = timedelta(days=10)


class LicencePhase(enum.StrEnum):
    """Where a contract's licence stands at a moment, in the order the phases come."""

    active = "active"
    notice_60 = "notice_60"
    notice_30 = "notice_30"
    notice_7 = "notice_7"
    grace = "grace"
    read_only = "read_only"


NOTICE_DAYS: dict[LicencePhase, int] = {
    LicencePhase.notice_60: 60,
    LicencePhase.notice_30: 30,
    LicencePhase.notice_7: 7,
}


@dataclass(frozen=True)
class Quarter:
    """Quarter ``number`` (1..4) of contract year ``year`` (1-based): ``start`` to ``end`` (exclusive)."""

    year: int
    number: int
    start: date
    end: date

    @property
    def remaining_quarters(self) -> int:
        """Quarters of its contract year left once this one has ended."""
        return QUARTERS_PER_YEAR - self.number


def add_months(start: date, months: int) -> date:
    """``start`` plus ``months`` calendar months, the day clamped to the last of the resulting month."""
    index = start.month - 1 + months
    year, month = start.year + index // 12, index % 12 + 1
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


def term_end(start: date, years: int) -> date:
    """The (exclusive) end of a contract started on ``start`` that runs ``years`` contract years."""
    return add_months(start, TERM_MONTHS * years)


def years_of(start: date, end: date) -> int:
    """How many contract years run from ``start`` to ``end``."""
    years = 0
    while term_end(start, years + 1) <= end:
        years += 1
    return years


def year_start(start: date, year: int) -> date:
    """The first day of contract year ``year`` (1-based)."""
    return add_months(start, TERM_MONTHS * (year - 1))


def quarter(start: date, year: int, number: int) -> Quarter:
    """Quarter ``number`` of contract year ``year``."""
    if not 1 <= number <= QUARTERS_PER_YEAR or year < 1:
        raise ValueError(f"no quarter {number} of year {year}")
    first_month = TERM_MONTHS * (year - 1) + MONTHS_PER_QUARTER * (number - 1)
    return Quarter(year, number, add_months(start, first_month), add_months(start, first_month + MONTHS_PER_QUARTER))


def midnight(day: date) -> datetime:
    """00:00 UTC of ``day``."""
    return datetime.combine(day, time(), tzinfo=UTC)


def annual_invoice_years(start: date, end: date, now: datetime) -> list[int]:
    """The contract years (1-based) that have begun by ``now`` within the term: each has its annual invoice."""
    return [year for year in range(1, years_of(start, end) + 1) if midnight(year_start(start, year)) <= now]


def true_forward_quarters(start: date, end: date, now: datetime) -> list[Quarter]:
    """Quarters 1..3 of each contract year of the term that have ended by ``now``: their true-forward is due
    (the fourth quarter ends the year; a renewal's annual invoice covers what follows)."""
    ended = []
    for year in range(1, years_of(start, end) + 1):
        for number in range(1, QUARTERS_PER_YEAR):
            candidate = quarter(start, year, number)
            if midnight(candidate.end) <= now:
                ended.append(candidate)
    return ended


def peak_seats(daily_seats: Iterable[tuple[date, int]], span: Quarter) -> int:
    """The most seats of any day of the quarter (0 without a snapshot in it)."""
    return max((seats for day, seats in daily_seats if span.start <= day < span.end), default=0)


def true_forward_cents(overage: int, annual_price_per_seat_cents: int, span: Quarter) -> int:
    """What ``overage`` extra seats cost for the rest of the contract year after ``span``, in whole cents."""
    if overage <= 0:
        return 0
    return round_half_up(Fraction(overage * annual_price_per_seat_cents * span.remaining_quarters, QUARTERS_PER_YEAR))


def grace_end(end: date) -> datetime:
    """When the grace after a contract ending on ``end`` is over (the licence becomes read-only)."""
    return midnight(end) + GRACE


def licence_phase(end: date, now: datetime) -> LicencePhase:
    """The licence's phase at ``now`` for a contract that ends (exclusive) on ``end``."""
    ends_at = midnight(end)
    if now >= grace_end(end):
        return LicencePhase.read_only
    if now >= ends_at:
        return LicencePhase.grace
    for phase in (LicencePhase.notice_7, LicencePhase.notice_30, LicencePhase.notice_60):
        if now >= ends_at - timedelta(days=NOTICE_DAYS[phase]):
            return phase
    return LicencePhase.active


def notice_due(end: date, now: datetime) -> LicencePhase | None:
    """The licence notice the phase at ``now`` calls for (``None`` while active). A notice whose time has been
    overtaken by a later one is not due any more: only the current phase's notice is."""
    phase = licence_phase(end, now)
    return None if phase is LicencePhase.active else phase
