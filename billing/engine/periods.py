"""Billing periods: calendar months in UTC, billed in arrears, by whole days.

- A **period** is a calendar month (UTC): from the 1st at 00:00 to the 1st of the next month. Its length
  (28 to 31 days, leap years included) is the denominator of every day's price in it.
- A **day is billed** when the paid plan is in force at its start (00:00 UTC): paid time is an interval
  ``[paid_from, paid_until)``, so a trial converting at 10:00 makes the next day the first billed day,
  and a cancellation taking effect at 15:00 bills that whole day (it was in force at midnight).
- An **invoice span** is the billed days of one period. It is due (in arrears) once its last billed day is
  over: at the period's end, or at the end of the paid interval for the final invoice after a cancellation.
  There is one invoice span per period, so the period's first day identifies the invoice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

ONE_DAY = timedelta(days=1)


@dataclass(frozen=True, order=True)
class Period:
    """One calendar month: ``start`` (the 1st) inclusive to ``end`` (the next 1st) exclusive."""

    start: date
    end: date

    @property
    def days(self) -> int:
        """The number of days in the month: the denominator of a day's price."""
        return (self.end - self.start).days

    @property
    def key(self) -> str:
        """``"2026-02"``: with the organization, identifies the period's one invoice."""
        return f"{self.start.year:04d}-{self.start.month:02d}"


@dataclass(frozen=True, order=True)
class InvoiceSpan:
    """The billed days ``[first_day, end_day)`` of one period."""

    period: Period
    first_day: date
    end_day: date

    @property
    def days(self) -> int:
        """The number of billed days."""
        return (self.end_day - self.first_day).days

    def each_day(self) -> list[date]:
        """The billed days in order."""
        return [self.first_day + timedelta(days=i) for i in range(self.days)]


def period_of(day: date) -> Period:
    """The calendar month containing ``day``."""
    start = day.replace(day=1)
    end = date(start.year + 1, 1, 1) if start.month == 12 else date(start.year, start.month + 1, 1)
    return Period(start, end)


def midnight(day: date) -> datetime:
    """00:00 UTC of ``day``."""
    return datetime.combine(day, time(0), tzinfo=UTC)


def first_day_starting_at_or_after(instant: datetime) -> date:
    """The first day whose midnight is at or after ``instant`` (an aware datetime)."""
    _require_aware(instant)
    utc = instant.astimezone(UTC)
    day = utc.date()
    return day if utc == midnight(day) else day + ONE_DAY


def billed_days(paid_from: datetime, paid_until: datetime | None) -> tuple[date, date | None]:
    """``[first, end)`` of the billed days of the paid interval ``[paid_from, paid_until)`` (``None``: open)."""
    first = first_day_starting_at_or_after(paid_from)
    end = None if paid_until is None else max(first, first_day_starting_at_or_after(paid_until))
    return first, end


def due_invoice_spans(paid_from: datetime, paid_until: datetime | None, now: datetime) -> list[InvoiceSpan]:
    """Every invoice span of the paid interval that is over by ``now``, oldest first (empty spans left out)."""
    first, end = billed_days(paid_from, paid_until)
    spans: list[InvoiceSpan] = []
    period = period_of(first)
    while end is None or period.start < end:
        span_end = period.end if end is None else min(period.end, end)
        if midnight(span_end) > now:
            break
        span_first = max(first, period.start)
        if span_first < span_end:
            spans.append(InvoiceSpan(period, span_first, span_end))
        period = period_of(period.end)
    return spans


def _require_aware(instant: datetime) -> None:
    if instant.tzinfo is None:
        raise ValueError(f"billing times are aware datetimes: {instant!r}")


@dataclass(frozen=True)
class PaidInterval:
    """A stretch of paid time ``[start, end)``; ``end`` is ``None`` while the paid plan is in force."""

    start: datetime
    end: datetime | None


@dataclass(frozen=True)
class DueSpan:
    """An invoice span that is due, and which of its days are billed (a gap between paid intervals is not)."""

    span: InvoiceSpan
    billed: frozenset[date]

    def is_billed(self, day: date) -> bool:
        """Whether ``day`` of the span was paid time."""
        return day in self.billed


def due_spans(intervals: list[PaidInterval], now: datetime, *, ended: bool) -> list[DueSpan]:
    """The invoice spans of paid time made of several intervals (a plan suspended, then resumed) that are due.

    A period's days are billed when any interval bills them (:func:`billed_days`). Its one invoice is due when
    the period is over, or, once the plan has ``ended`` (cancelled: no interval open), when its last paid
    interval is over: the final invoice. A suspension that is not an end waits for the period's end, so days
    paid after a resumption in the same month join the same invoice.
    """
    billed: set[date] = set()
    last_end: date | None = None
    for interval in intervals:
        first, end = billed_days(interval.start, interval.end)
        stop = end if end is not None else max(first, first_day_starting_at_or_after(now) + ONE_DAY)
        billed.update(first + timedelta(days=i) for i in range((stop - first).days))
        last_end = end
    if not billed:
        return []
    final_due = ended and intervals[-1].end is not None and last_end is not None and midnight(last_end) <= now
    last_day = max(billed)
    due: list[DueSpan] = []
    period = period_of(min(billed))
    while period.start <= last_day:
        days = frozenset(day for day in billed if period.start <= day < period.end)
        is_last = period.end > last_day
        if days and (midnight(period.end) <= now or (is_last and final_due)):
            due.append(DueSpan(InvoiceSpan(period, min(days), max(days) + ONE_DAY), days))
        period = period_of(period.end)
    return due
