"""The engine's pieces together, then collected on localstripe: a conversion, months of changing seats, a cancel."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction

import stripe

from billing.engine.periods import due_invoice_spans
from billing.engine.pricing import InvoiceDraft, price_span
from billing.engine.seats import SeatSnapshot, seats_per_day
from billing.gateway import invoice_request
from billing.stripe_gateway import StripeApi, StripeGateway

CONVERTED = datetime(2028, 1, 20, 10, 0, tzinfo=UTC)  # 2028 is a leap year
CANCELED = datetime(2028, 4, 10, 15, 0, tzinfo=UTC)


def changing_seats(seed: int) -> list[SeatSnapshot]:
    """Snapshots from the conversion on: a daily count plus users joining and leaving at any time of day."""
    rng = random.Random(seed)
    seats, snapshots, at = 3, [SeatSnapshot(CONVERTED, 3)], CONVERTED
    while at < CANCELED:
        at += timedelta(minutes=rng.randrange(30, 36 * 60))
        seats = max(0, seats + rng.choice([-2, -1, 0, 1, 1, 2, 3]))
        snapshots.append(SeatSnapshot(at, seats))
    return snapshots


def independent_invoices(snapshots: list[SeatSnapshot]) -> dict[str, int]:
    """The issue's rule written again by brute force: per month, sum of the day's peak x $10 / days in month."""
    totals: dict[str, Fraction] = {}
    day = date(2028, 1, 21)  # converted at 10:00 on the 20th: the 21st is the first day in force at midnight
    while day <= date(2028, 4, 10):  # in force at midnight of the 10th of April, not of the 11th
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        in_force = [s.seats for s in snapshots if s.taken_at <= start][-1:]
        during = [s.seats for s in snapshots if start < s.taken_at < start + timedelta(days=1)]
        month_days = ((day.replace(day=28) + timedelta(days=4)).replace(day=1) - day.replace(day=1)).days
        key = f"{day:%Y-%m}"
        totals[key] = totals.get(key, Fraction(0)) + Fraction(max(in_force + during) * 1000, month_days)
        day += timedelta(days=1)
    return {key: int(exact + Fraction(1, 2)) for key, exact in totals.items()}


def drafts(snapshots: list[SeatSnapshot], now: datetime) -> list[InvoiceDraft]:
    return [
        price_span(span, seats_per_day(snapshots, span.each_day()))
        for span in due_invoice_spans(CONVERTED, CANCELED, now)
    ]


def test_months_of_changing_seats_match_the_brute_force_reading() -> None:
    for seed in range(40):
        snapshots = changing_seats(seed)
        invoices = {d.span.period.key: d.total_cents for d in drafts(snapshots, CANCELED + timedelta(days=1))}
        assert invoices == independent_invoices(snapshots), seed
    assert [d.span.days for d in drafts(changing_seats(0), CANCELED + timedelta(days=1))] == [11, 29, 31, 10]
    assert [d.span.period.key for d in drafts(changing_seats(0), datetime(2028, 3, 15, tzinfo=UTC))] == [
        "2028-01",
        "2028-02",
    ]


def test_the_same_months_are_collected_on_localstripe_to_the_cent(stripe_client: stripe.StripeClient) -> None:
    gateway = StripeGateway(stripe_client, StripeApi.localstripe)
    customer = gateway.ensure_customer("org-1", "owner@example.com", "Acme")
    gateway.set_default_payment_method(customer.id, "pm_card_visa")
    snapshots = changing_seats(7)
    expected = independent_invoices(snapshots)
    collected = {}
    for draft in drafts(snapshots, CANCELED + timedelta(days=1)):
        key = f"org-1:{draft.span.period.key}"
        invoice = gateway.create_invoice(invoice_request(key, customer.id, draft))
        result = gateway.pay_invoice(invoice.id, key, attempt=1)
        assert result.succeeded
        held = stripe_client.v1.invoices.retrieve(invoice.id)
        collected[draft.span.period.key] = (held.status, held.amount_paid)
    assert collected == {key: ("paid", cents) for key, cents in expected.items()}
