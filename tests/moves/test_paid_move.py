"""A paying Professional customer moved to Enterprise: the plan ends at its period's end, the retired workspace counts
no seat from the move on, so the final invoice holds only the seat-days before the move; billing's cancellation
touches neither the retired workspace nor the Enterprise one. On a clock the test moves (a plane of its own)."""

from __future__ import annotations

import calendar
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction

import pytest
from sqlalchemy import select

from control_plane.core import db as core_db
from control_plane.core.clock import utcnow
from control_plane.subscriptions.models import Invoice, SeatSnapshot, Subscription
from control_plane.workspaces.lifecycle import Lifecycle
from tests.billed_plane import BilledPlane, billed_plane
from tests.harness.localstripe import LocalStripe
from tests.moves.conftest import MovePlane

USED_DAYS = 3
"""Days the paid plan is used before the move."""


@pytest.fixture(scope="module")
def paid(
    create_database: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory, localstripe: LocalStripe
) -> Iterator[tuple[BilledPlane, MovePlane]]:
    with billed_plane(create_database, tmp_path_factory, localstripe, "paid_moves") as billed:
        yield billed, MovePlane(billed.plane)


def _subscription(organization_id: uuid.UUID) -> Subscription:
    with core_db.session_scope() as session:
        sub = session.get(Subscription, organization_id)
        assert sub is not None
        session.expunge(sub)
        return sub


def _newest_seats(workspace_id: uuid.UUID) -> int:
    with core_db.session_scope() as session:
        query = select(SeatSnapshot.seats).where(SeatSnapshot.workspace_id == workspace_id)
        seats = session.scalars(query.order_by(SeatSnapshot.taken_at.desc()).limit(1)).first()
        assert seats is not None
        return seats


def test_a_paying_customer_pays_only_the_days_before_the_move(paid: tuple[BilledPlane, MovePlane]) -> None:
    billed, moving = paid
    slug = f"paid-{uuid.uuid4().hex[:6]}"
    workspace_id, organization_id = billed.professional_workspace(slug)
    carded = billed.billing_api(workspace_id, "POST", "/card", json={"payment_method_id": "pm_card_visa"})
    assert carded.is_success, carded.text
    billed.collect_seats()
    billed.advance(_subscription(organization_id).trial_ends_at + timedelta(minutes=1) - utcnow())
    billed.bill(organization_id)
    assert _subscription(organization_id).status.value == "active"
    paid_from = utcnow().date()
    for _ in range(USED_DAYS):  # the owner's seat counted each day it is used
        billed.collect_seats()
        assert _newest_seats(workspace_id) == 1
        billed.advance(timedelta(days=1))

    moving.sign_contract(organization_id)
    now = utcnow()
    body = {"workspace_id": str(workspace_id), "downtime_start": now.isoformat(), "downtime_minutes": 20}
    assert moving.move(organization_id, body).status_code == 202
    move = moving.wait_move(organization_id)
    assert move["state"] == "done", move
    target_id = uuid.UUID(move["target_workspace_id"])
    moving.plane.workspace_ids.append(target_id)

    period_end = datetime.combine((now.date().replace(day=28) + timedelta(days=4)).replace(day=1), time(0), tzinfo=UTC)
    sub = _subscription(organization_id)
    assert (sub.status.value, sub.cancel_at) == ("active", period_end)  # paid until the period's end, then over
    billed.collect_seats()
    assert _newest_seats(workspace_id) == 0  # the retired workspace counts no seat from the move on

    billed.advance(period_end + timedelta(hours=1) - utcnow())
    billed.bill(organization_id)
    assert _subscription(organization_id).status.value == "canceled"
    assert moving.plane.row(workspace_id).lifecycle_state == Lifecycle.pending_deletion
    assert moving.plane.row(target_id).lifecycle_state == Lifecycle.active
    with core_db.session_scope() as session:
        invoices = session.scalars(select(Invoice).where(Invoice.organization_id == organization_id)).all()
    assert [invoice.end_day for invoice in invoices if invoice.final] == [period_end.date()]
    lines = [line for invoice in invoices for line in invoice.lines]
    # Charged: each day from the trial's end to the move's day (used until the window), none after it.
    billed_days = {
        date.fromisoformat(line["first_day"]) + timedelta(days=offset): line["seats"]
        for line in lines
        for offset in range(line["days"])
    }
    used = [paid_from + timedelta(days=offset) for offset in range(1, USED_DAYS + 1)]
    assert billed_days == dict.fromkeys(used, 1) and used[-1] == now.date(), lines
    assert sum(invoice.amount_cents for invoice in invoices) == _owed(used), lines


def _owed(days: list[date]) -> int:
    """One seat on ``days`` at $10 a seat-month, each month's invoice prorated by day and rounded half up."""
    months = {(day.year, day.month) for day in days}
    owed = 0
    for year, month in months:
        in_month = sum(1 for day in days if (day.year, day.month) == (year, month))
        owed += int(Fraction(1000 * in_month, calendar.monthrange(year, month)[1]) + Fraction(1, 2))
    return owed
