"""The contract engine: quarters from a start date, true-forward amounts to the cent, the licence's phases."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from billing.engine.contracts import (
    LicencePhase,
    add_months,
    annual_invoice_years,
    grace_end,
    licence_phase,
    notice_due,
    peak_seats,
    quarter,
    term_end,
    true_forward_cents,
    true_forward_quarters,
    years_of,
)


def at(day: date, hours: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(hours=hours)


def test_months_are_calendar_months_clamped_to_the_month_end() -> None:
    assert add_months(date(2027, 1, 31), 1) == date(2027, 2, 28)
    assert add_months(date(2028, 1, 31), 1) == date(2028, 2, 29)
    assert add_months(date(2027, 11, 15), 3) == date(2028, 2, 15)
    assert add_months(date(2027, 5, 1), 12) == date(2028, 5, 1)


def test_quarters_count_from_the_start_date_so_clamping_never_drifts() -> None:
    start = date(2027, 1, 31)
    starts = [quarter(start, 1, number).start for number in range(1, 5)]
    assert starts == [date(2027, 1, 31), date(2027, 4, 30), date(2027, 7, 31), date(2027, 10, 31)]
    assert quarter(start, 1, 4).end == date(2028, 1, 31) == term_end(start, 1)
    assert quarter(start, 2, 1) == quarter(start, 2, 1)
    assert quarter(start, 2, 1).start == date(2028, 1, 31)
    with pytest.raises(ValueError):
        quarter(start, 1, 5)


def test_years_and_annual_invoices_within_the_term() -> None:
    start = date(2027, 3, 1)
    assert years_of(start, term_end(start, 1)) == 1
    assert years_of(start, term_end(start, 3)) == 3
    assert annual_invoice_years(start, term_end(start, 1), at(start) - timedelta(seconds=1)) == []
    assert annual_invoice_years(start, term_end(start, 1), at(start)) == [1]
    assert annual_invoice_years(start, term_end(start, 1), at(date(2029, 1, 1))) == [1]  # not renewed
    assert annual_invoice_years(start, term_end(start, 2), at(date(2028, 3, 1))) == [1, 2]


def test_true_forward_is_due_at_the_end_of_quarters_one_to_three() -> None:
    start = date(2027, 3, 1)
    end = term_end(start, 1)
    assert true_forward_quarters(start, end, at(date(2027, 5, 31), 23)) == []
    due = true_forward_quarters(start, end, at(date(2027, 6, 1)))
    assert [(q.year, q.number) for q in due] == [(1, 1)]
    everything = true_forward_quarters(start, end, at(date(2030, 1, 1)))
    assert [(q.year, q.number) for q in everything] == [(1, 1), (1, 2), (1, 3)]


def test_peak_is_the_most_seats_of_a_day_in_the_quarter() -> None:
    span = quarter(date(2027, 3, 1), 1, 1)
    daily = [(date(2027, 2, 28), 99), (date(2027, 3, 1), 5), (date(2027, 4, 10), 12), (date(2027, 6, 1), 50)]
    assert peak_seats(daily, span) == 12
    assert peak_seats([], span) == 0


def test_true_forward_amounts_to_the_cent_half_up() -> None:
    span = [quarter(date(2027, 3, 1), 1, number) for number in (1, 2, 3)]
    assert true_forward_cents(10, 12_000, span[0]) == 90_000  # 10 x $120 x 3/4
    assert true_forward_cents(1, 12_001, span[1]) == 6_001  # 6000.5 -> up
    assert true_forward_cents(1, 12_001, span[2]) == 3_000  # 3000.25 -> down
    assert true_forward_cents(3, 12_003, span[0]) == 27_007  # 27006.75 -> up
    assert true_forward_cents(0, 12_000, span[0]) == 0
    assert true_forward_cents(-4, 12_000, span[0]) == 0


def test_licence_phases_and_notices() -> None:
    end = date(2028, 3, 1)
    ends_at = at(end)
    assert licence_phase(end, ends_at - timedelta(days=61)) is LicencePhase.active
    assert notice_due(end, ends_at - timedelta(days=61)) is None
    assert licence_phase(end, ends_at - timedelta(days=60)) is LicencePhase.notice_60
    assert licence_phase(end, ends_at - timedelta(days=30, seconds=1)) is LicencePhase.notice_60
    assert licence_phase(end, ends_at - timedelta(days=30)) is LicencePhase.notice_30
    assert licence_phase(end, ends_at - timedelta(days=7)) is LicencePhase.notice_7
    assert licence_phase(end, ends_at) is LicencePhase.grace
    assert grace_end(end) == ends_at + timedelta(days=10)
    assert licence_phase(end, grace_end(end) - timedelta(seconds=1)) is LicencePhase.grace
    assert licence_phase(end, grace_end(end)) is LicencePhase.read_only
    assert notice_due(end, grace_end(end)) is LicencePhase.read_only
