"""Money: integer cents, and the one rounding rule of billing.

Amounts are exact :class:`~fractions.Fraction` values of cents while they are computed and are rounded
**once, half up** (0.5 cent goes up) to integer cents by :func:`round_half_up`. Where one amount is split
into lines, each line gets the difference of consecutive rounded running totals (:func:`allocate`), so the
lines always add up to the rounded total and no line is more than one cent from its exact share.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from fractions import Fraction


def round_half_up(amount: Fraction) -> int:
    """``amount`` (cents, >= 0) rounded to whole cents, halves going up."""
    if amount < 0:
        raise ValueError(f"amounts are never negative: {amount}")
    return math.floor(amount + Fraction(1, 2))


def allocate(exact_amounts: Iterable[Fraction]) -> list[int]:
    """Whole cents for each exact amount: the differences of the rounded running totals."""
    cents: list[int] = []
    running = Fraction(0)
    rounded_so_far = 0
    for exact in exact_amounts:
        running += exact
        rounded = round_half_up(running)
        cents.append(rounded - rounded_so_far)
        rounded_so_far = rounded
    return cents


def format_cents(cents: int, currency: str = "usd") -> str:
    """``1234`` -> ``"$12.34"`` (USD) or ``"12.34 EUR"``."""
    whole, fraction = divmod(cents, 100)
    number = f"{whole:,}.{fraction:02d}"
    return f"${number}" if currency == "usd" else f"{number} {currency.upper()}"
