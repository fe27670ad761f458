"""Three months of a Professional organization whose seats change every day, through a real Mattermost client:
each invoice equals the seat-days computed here, independently of the billing engine, to the cent, and Stripe
(localstripe) holds and collected the same amounts."""

from __future__ import annotations

import math
import random
from datetime import date, datetime, timedelta
from fractions import Fraction

import stripe
from sqlalchemy import select

from control_plane.core.clock import utcnow
from control_plane.core.db import session_scope
from control_plane.subscriptions.models import Invoice, Subscription
from tests.billed_plane import BilledPlane
from tests.reconciler.conftest import PASSWORD

UNIT_CENTS = 1000  # $10 per seat per month


def expected_cents(seats_by_day: dict[date, int], first_billed: date, period_start: date) -> tuple[int, int, date]:
    """The test's own arithmetic: sum over the billed days of the month of seats x $10 / days in the month,
    rounded half up once. Returns (cents, billed days, first billed day of the month)."""
    next_month = (period_start.replace(day=28) + timedelta(days=4)).replace(day=1)
    days_in_month = (next_month - period_start).days
    first = max(first_billed, period_start)
    total, days, day = Fraction(0), 0, first
    while day < next_month:
        total += Fraction(seats_by_day[day] * UNIT_CENTS, days_in_month)
        days += 1
        day += timedelta(days=1)
    return math.floor(total + Fraction(1, 2)), days, first


def invoices_of(organization_id: object) -> list[Invoice]:
    with session_scope() as session:
        rows = session.scalars(select(Invoice).where(Invoice.organization_id == organization_id)).all()
        for row in rows:
            session.expunge(row)
        return sorted(rows, key=lambda row: row.first_day)


def test_three_months_of_daily_seat_changes_are_invoiced_to_the_cent(
    billed: BilledPlane, stripe_client: stripe.StripeClient
) -> None:
    workspace_id, organization_id = billed.professional_workspace("threemonths")
    admin = billed.driver(workspace_id, "threemonths.admin@example.com")
    assert billed.billing_api(workspace_id, "POST", "/card", json={"payment_method_id": "pm_card_visa"}).is_success
    admin.client.post("/bots", options={"username": "reporter", "display_name": "Reporter"})  # never a seat
    team_id = admin.teams.get_user_teams("me")[0]["id"]

    rng = random.Random(20261207)
    active: list[str] = []  # user ids the test activated and has not deactivated
    counts: dict[date, int] = {}  # seats when the day's snapshot is taken (12:00)
    billed.advance_to_next(12)
    while len([i for i in invoices_of(organization_id) if i.amount_cents > 0]) < 3:
        today = utcnow().date()
        for _ in range(rng.randint(0, 3)):
            user = admin.users.create_user(
                {
                    "email": f"u{len(counts)}-{rng.randrange(10**9)}@example.com",
                    "password": PASSWORD,
                    "username": f"u{len(counts)}x{rng.randrange(10**6)}",
                }
            )
            admin.teams.add_user_to_team(team_id, {"team_id": team_id, "user_id": user["id"]})
            active.append(user["id"])
        for _ in range(min(len(active), rng.randint(0, 2))):
            admin.users.deactivate_user(active.pop(rng.randrange(len(active))))
        counts[today] = 1 + len(active)  # the admin and the people still active
        assert billed.collect_seats() == 1
        billed.bill(organization_id)
        billed.advance(timedelta(days=1))
        assert len(counts) < 140, "three invoices should be out within 140 days"

    # A day's seats are the peak in force during it: yesterday's count at midnight, today's at noon.
    first_day = min(counts)
    seats_by_day = {day: max(counts[day], counts.get(day - timedelta(days=1), 0)) for day in counts}
    with session_scope() as session:
        sub = session.get(Subscription, organization_id)
        assert sub is not None
        trial_end = sub.trial_ends_at
    # Paid time starts when the trial ends; a day is billed when that is at or before its midnight.
    first_billed = trial_end.date() + timedelta(days=0 if trial_end.time() == datetime.min.time() else 1)
    assert first_billed > first_day

    collected = [invoice for invoice in invoices_of(organization_id) if invoice.amount_cents > 0]
    assert len(collected) >= 3
    for invoice in collected[:3]:
        cents, days, first = expected_cents(seats_by_day, first_billed, invoice.first_day.replace(day=1))
        assert (invoice.amount_cents, invoice.first_day) == (cents, first), invoice.period
        assert sum(line["days"] for line in invoice.lines) == days
        assert sum(line["amount_cents"] for line in invoice.lines) == cents
        assert invoice.state.value == "paid" and invoice.attempts == 1
        held = stripe_client.v1.invoices.retrieve(str(invoice.gateway_invoice_id))
        assert (held.status, held.amount_due, held.amount_paid) == ("paid", cents, cents)

    # The seats changed for real: the months are not all the same amount.
    assert len({invoice.amount_cents for invoice in collected[:3]}) > 1
