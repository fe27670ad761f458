"""The one rounding rule: half up, once; lines are differences of rounded running totals."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.engine.money import allocate, format_cents, round_half_up


@pytest.mark.parametrize(
    ("exact", "cents"),
    [
        (Fraction(0), 0),
        (Fraction(1, 2), 1),
        (Fraction(3, 2), 2),
        (Fraction(5, 2), 3),  # half up, not half even
        (Fraction(49, 100), 0),
        (Fraction(51, 100), 1),
        (Fraction(1000 * 12, 31), 387),  # 387.09...
        (Fraction(1000 * 3 * 12, 31), 1161),  # 1161.29...
        (Fraction(100001, 2), 50001),
    ],
)
def test_round_half_up_table(exact: Fraction, cents: int) -> None:
    assert round_half_up(exact) == cents


def test_negative_amounts_are_refused() -> None:
    with pytest.raises(ValueError, match="never negative"):
        round_half_up(Fraction(-1, 3))


def test_allocate_splits_a_total_into_lines_that_add_up() -> None:
    thirds = [Fraction(1000, 3)] * 3  # 333.33.. each, 1000 in all
    assert allocate(thirds) == [333, 334, 333]
    assert allocate([]) == []


fractions = st.fractions(min_value=0, max_value=10**7, max_denominator=31)


@given(st.lists(fractions, max_size=40))
def test_allocated_lines_add_up_to_the_rounded_total_and_stay_within_a_cent(exacts: list[Fraction]) -> None:
    cents = allocate(exacts)
    assert sum(cents) == round_half_up(sum(exacts, Fraction(0)))
    assert all(abs(c - e) <= 1 and c >= 0 for c, e in zip(cents, exacts, strict=True))


def test_format_cents() -> None:
    assert format_cents(123456) == "$1,234.56"
    assert format_cents(5) == "$0.05"
    assert format_cents(1000, "eur") == "10.00 EUR"
