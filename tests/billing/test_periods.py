"""Calendar-month periods, whole billed days, invoice spans in arrears."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta

import pytest

from billing.engine.periods import (
    InvoiceSpan,
    PaidInterval,
    Period,
    billed_days,
    due_invoice_spans,
    due_spans,
    first_day_starting_at_or_after,
    midnight,
    period_of,
)


def at(day: str, hour: int = 0, minute: int = 0) -> datetime:
    return datetime.combine(date.fromisoformat(day), datetime.min.time(), tzinfo=UTC).replace(hour=hour, minute=minute)


def every_day(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def test_every_day_of_four_years_lies_in_its_calendar_month() -> None:
    for day in every_day(date(2024, 1, 1), date(2028, 12, 31)):  # 2024 and 2028 are leap years
        period = period_of(day)
        assert period.start == day.replace(day=1)
        assert period.days == calendar.monthrange(day.year, day.month)[1]
        assert period.start <= day < period.end
        assert period.key == f"{day.year:04d}-{day.month:02d}"


@pytest.mark.parametrize(
    ("month", "days"), [("2024-02-01", 29), ("2025-02-01", 28), ("2100-02-01", 28), ("2000-02-01", 29)]
)
def test_february_follows_the_leap_year_rule(month: str, days: int) -> None:
    assert period_of(date.fromisoformat(month)).days == days


def test_a_day_is_billed_when_the_plan_is_in_force_at_its_midnight() -> None:
    assert first_day_starting_at_or_after(at("2026-01-20")) == date(2026, 1, 20)
    assert first_day_starting_at_or_after(at("2026-01-20", 0, 1)) == date(2026, 1, 21)
    assert first_day_starting_at_or_after(at("2026-12-31", 23)) == date(2027, 1, 1)
    # cancelled at 15:00 on the 10th: the 10th was in force at midnight, so it is billed
    assert billed_days(at("2026-01-20", 10), at("2026-02-10", 15)) == (date(2026, 1, 21), date(2026, 2, 11))
    # cancelled exactly at midnight of the 10th: the 10th is not billed
    assert billed_days(at("2026-01-20", 10), at("2026-02-10")) == (date(2026, 1, 21), date(2026, 2, 10))
    # cancelled before the first billed day: nothing billed
    assert billed_days(at("2026-01-20", 10), at("2026-01-20", 11)) == (date(2026, 1, 21), date(2026, 1, 21))


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        first_day_starting_at_or_after(datetime(2026, 1, 1))


def test_a_partial_first_month_is_due_at_the_month_end_and_not_before() -> None:
    paid_from = at("2026-01-20", 10)
    january = InvoiceSpan(Period(date(2026, 1, 1), date(2026, 2, 1)), date(2026, 1, 21), date(2026, 2, 1))
    assert due_invoice_spans(paid_from, None, at("2026-01-31", 23, 59)) == []
    assert due_invoice_spans(paid_from, None, at("2026-02-01")) == [january]
    assert january.days == 11
    february = InvoiceSpan(Period(date(2026, 2, 1), date(2026, 3, 1)), date(2026, 2, 1), date(2026, 3, 1))
    assert due_invoice_spans(paid_from, None, at("2026-03-01", 0, 1)) == [january, february]


def test_a_cancellation_mid_period_makes_a_final_span_due_when_it_takes_effect() -> None:
    paid_from, paid_until = at("2026-01-05"), at("2026-03-10", 15)
    spans = due_invoice_spans(paid_from, paid_until, at("2026-03-11"))
    assert [(s.period.key, s.first_day.day, s.days) for s in spans] == [
        ("2026-01", 5, 27),
        ("2026-02", 1, 28),
        ("2026-03", 1, 10),
    ]
    assert due_invoice_spans(paid_from, paid_until, at("2026-03-10", 23)) == spans[:2]
    assert due_invoice_spans(paid_from, paid_until, at("2027-01-01")) == spans  # nothing after the end


def test_spans_cover_exactly_the_billed_days_for_every_start_and_end_in_a_leap_year() -> None:
    days = every_day(date(2027, 12, 25), date(2029, 1, 5))[::3] + every_day(date(2028, 2, 25), date(2028, 3, 3))
    for first in days:
        for last in [*[d for d in days if d >= first][::4], None]:
            paid_from = midnight(first) + timedelta(hours=7)
            paid_until = None if last is None else midnight(last) + timedelta(hours=7)
            now = midnight(date(2029, 2, 1))
            spans = due_invoice_spans(paid_from, paid_until, now)
            billed = [d for span in spans for d in span.each_day()]
            billed_first, billed_end = billed_days(paid_from, paid_until)
            expected_end = billed_end if billed_end is not None else date(2029, 2, 1)
            assert billed == every_day(billed_first, expected_end - timedelta(days=1))
            assert all(period_of(s.first_day) == s.period and s.end_day <= s.period.end and s.days > 0 for s in spans)
            assert len({s.period for s in spans}) == len(spans)  # one invoice per period


def test_paid_time_in_several_intervals_makes_one_invoice_per_period_with_the_gap_unbilled() -> None:
    # Paid from 10 January 10:00, suspended 20 January 15:00, paid again from 25 January 08:00 on.
    intervals = [PaidInterval(at("2026-01-10", 10), at("2026-01-20", 15)), PaidInterval(at("2026-01-25", 8), None)]
    assert due_spans(intervals, at("2026-01-31", 23), ended=False) == []  # a suspension is not an end
    (january,) = due_spans(intervals, at("2026-02-01"), ended=False)
    assert january.span == InvoiceSpan(period_of(date(2026, 1, 1)), date(2026, 1, 11), date(2026, 2, 1))
    billed = every_day(date(2026, 1, 11), date(2026, 1, 20)) + every_day(date(2026, 1, 26), date(2026, 1, 31))
    assert sorted(january.billed) == billed
    assert not january.is_billed(date(2026, 1, 22)) and january.is_billed(date(2026, 1, 20))
    assert [d.span.period.key for d in due_spans(intervals, at("2026-03-01"), ended=False)] == ["2026-01", "2026-02"]


def test_the_final_invoice_is_due_when_the_ended_plan_stops() -> None:
    intervals = [PaidInterval(at("2026-01-10", 10), at("2026-03-10", 15))]
    assert [d.span.period.key for d in due_spans(intervals, at("2026-03-10", 23), ended=True)] == [
        "2026-01",
        "2026-02",
    ]
    spans = due_spans(intervals, at("2026-03-11"), ended=True)
    assert spans[-1].span == InvoiceSpan(period_of(date(2026, 3, 1)), date(2026, 3, 1), date(2026, 3, 11))
    # The same stop without an end (a suspension) waits for the month's end.
    assert len(due_spans(intervals, at("2026-03-11"), ended=False)) == 2
    assert due_spans([], at("2026-03-11"), ended=True) == []
