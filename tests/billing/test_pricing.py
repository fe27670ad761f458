"""Invoice lines from seats per day (Professional) and the Enterprise true-forward."""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.engine.money import round_half_up
from billing.engine.periods import InvoiceSpan, period_of
from billing.engine.pricing import (
    PROFESSIONAL,
    EnterpriseContract,
    Interval,
    SeatPrice,
    contract_quarter_start,
    price_span,
    true_forward,
)


def span_of(first: date, days: int) -> InvoiceSpan:
    return InvoiceSpan(period_of(first), first, first + timedelta(days=days))


def independent_total(daily_seats: list[int], days_in_month: int, unit_cents: int = 1000) -> int:
    """The issue's formula, written again: sum of seats x $10 / days in period, rounded half up once."""
    exact = sum((Fraction(s * unit_cents, days_in_month) for s in daily_seats), Fraction(0))
    return int(exact + Fraction(1, 2))


MONTHS = [date(2026, 2, 1), date(2028, 2, 1), date(2026, 4, 1), date(2026, 1, 1)]  # 28, 29, 30, 31 days


@pytest.mark.parametrize("month", MONTHS, ids=lambda m: f"{period_of(m).days}d")
def test_one_seat_for_a_whole_month_costs_ten_dollars_whatever_the_month_length(month: date) -> None:
    days = period_of(month).days
    draft = price_span(span_of(month, days), [1] * days)
    assert draft.total_cents == 1000
    assert [(line.seats, line.days, line.unit_amount_cents, line.amount_cents) for line in draft.lines] == [
        (1, days, 1000, 1000)
    ]


@pytest.mark.parametrize("month", MONTHS, ids=lambda m: f"{period_of(m).days}d")
def test_every_partial_span_and_seat_count_matches_the_formula(month: date) -> None:
    period_days = period_of(month).days
    for first_offset in range(period_days):
        for days in range(1, period_days - first_offset + 1):
            span = span_of(month + timedelta(days=first_offset), days)
            for seats in (1, 2, 3, 7, 49):
                draft = price_span(span, [seats] * days)
                assert draft.total_cents == independent_total([seats] * days, period_days)
                assert draft.total_cents == round_half_up(Fraction(seats * 1000 * days, period_days))


def test_a_partial_first_month_after_conversion() -> None:
    """Trial converted on 20 January at 10:00: 21-31 January billed, 3 seats: 3 x $10 x 11/31 = $10.645 -> $10.65."""
    draft = price_span(span_of(date(2026, 1, 21), 11), [3] * 11)
    assert draft.total_cents == 1065
    assert draft.lines[0].exact_amount == Fraction(33000, 31)


def test_runs_of_equal_seats_make_lines_and_empty_days_make_none() -> None:
    seats = [2, 2, 2, 0, 0, 5, 5, 3] + [3] * 20  # 28 days of February 2026
    draft = price_span(span_of(date(2026, 2, 1), 28), seats)
    assert [(line.first_day.day, line.last_day.day, line.days, line.seats) for line in draft.lines] == [
        (1, 3, 3, 2),
        (6, 7, 2, 5),
        (8, 28, 21, 3),
    ]
    # exact: 6000/28 = 214.29, 10000/28 = 357.14, 63000/28 = 2250; running totals 214.29, 571.43, 2821.43
    assert [line.amount_cents for line in draft.lines] == [214, 357, 2250]
    assert draft.total_cents == independent_total(seats, 28) == 2821


def test_no_seats_no_lines() -> None:
    draft = price_span(span_of(date(2026, 2, 1), 28), [0] * 28)
    assert draft.lines == ()
    assert draft.total_cents == 0


def test_mismatched_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="seat counts"):
        price_span(span_of(date(2026, 2, 1), 28), [1] * 27)
    with pytest.raises(ValueError, match="monthly"):
        price_span(span_of(date(2026, 2, 1), 1), [1], SeatPrice("enterprise", 12000, Interval.year))


@given(
    month=st.sampled_from(MONTHS),
    data=st.data(),
    unit=st.sampled_from([1000, 999, 1, 12345]),
)
def test_any_seat_pattern_is_priced_by_the_formula(month: date, data: st.DataObject, unit: int) -> None:
    period_days = period_of(month).days
    first = data.draw(st.integers(0, period_days - 1))
    seats = data.draw(st.lists(st.integers(0, 500), min_size=1, max_size=period_days - first))
    price = SeatPrice("custom", unit, Interval.month)
    draft = price_span(span_of(month + timedelta(days=first), len(seats)), seats, price)
    assert draft.total_cents == independent_total(seats, period_days, unit)
    assert sum(line.days for line in draft.lines) == sum(1 for s in seats if s)
    assert all(abs(line.amount_cents - line.exact_amount) <= 1 for line in draft.lines)
    assert all(
        a.seats != b.seats or a.last_day + timedelta(days=1) != b.first_day for a, b in itertools.pairwise(draft.lines)
    )


def test_professional_price() -> None:
    assert (PROFESSIONAL.unit_amount_cents, PROFESSIONAL.interval, PROFESSIONAL.currency) == (1000, "month", "usd")


CONTRACT = EnterpriseContract(start=date(2026, 1, 31), seats_purchased=100, annual_unit_amount_cents=9600)


@pytest.mark.parametrize(
    ("peak", "quarter", "added", "remaining", "cents"),
    [
        (120, 1, 20, 3, 144000),  # 20 x $96 x 3/4
        (120, 2, 20, 2, 96000),
        (101, 3, 1, 1, 2400),
        (150, 4, 50, 0, 0),  # the last quarter is settled at renewal
        (100, 1, 0, 3, 0),
        (80, 2, 0, 2, 0),  # fewer seats than purchased: nothing back
    ],
)
def test_true_forward_table(peak: int, quarter: int, added: int, remaining: int, cents: int) -> None:
    charge = true_forward(CONTRACT, peak, quarter)
    assert (charge.added_seats, charge.remaining_quarters, charge.amount_cents) == (added, remaining, cents)
    assert charge.seats_purchased_after == 100 + added


def test_true_forward_rounds_half_up_once() -> None:
    odd = EnterpriseContract(start=date(2026, 1, 1), seats_purchased=0, annual_unit_amount_cents=1001)
    assert true_forward(odd, 1, 3).amount_cents == 250  # 1001/4 = 250.25
    assert true_forward(odd, 2, 2).amount_cents == 1001  # 2 x 1001 x 2/4
    assert true_forward(odd, 1, 1).amount_cents == 751  # 750.75
    with pytest.raises(ValueError, match="quarters 1 to 4"):
        true_forward(odd, 1, 0)


def test_contract_quarters_follow_the_anniversary_and_clamp_to_month_ends() -> None:
    starts = [contract_quarter_start(CONTRACT, year, q) for year in (0, 1) for q in (1, 2, 3, 4)]
    assert starts == [
        date(2026, 1, 31),
        date(2026, 4, 30),
        date(2026, 7, 31),
        date(2026, 10, 31),
        date(2027, 1, 31),
        date(2027, 4, 30),
        date(2027, 7, 31),
        date(2027, 10, 31),
    ]
    leap = EnterpriseContract(start=date(2027, 11, 30), seats_purchased=1, annual_unit_amount_cents=1)
    assert contract_quarter_start(leap, 0, 2) == date(2028, 2, 29)
