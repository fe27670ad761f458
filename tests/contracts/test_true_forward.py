"""A contract year on the clock with seats rising past the purchase, counted by the product's daily seat collection
from a real Enterprise workspace server (users made and deactivated through ``mattermostdriver``): exactly one
true-forward invoice per quarter that needs one, each amount computed here independently to the cent, and a rerun
of every quarter's job adds nothing."""

from __future__ import annotations

import calendar
import math
import uuid
from datetime import date, timedelta
from fractions import Fraction

import stripe
from sqlalchemy import select

from control_plane.contracts.models import Contract, ContractInvoice
from control_plane.core.authz import Role
from control_plane.core.clock import utcnow
from control_plane.core.db import session_scope
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Tier
from tests.billed_plane import BilledPlane
from tests.contracts.conftest import contract_run
from tests.reconciler.conftest import PASSWORD

PURCHASED = 2
PRICE = 12_001  # cents per seat per year: true-forwards land on quarter and half cents
# Seats wanted (admin included) from a day of the contract on: up in Q1 then down (the peak counts), flat in Q2,
# up again in Q3, up in Q4 (no true-forward after the fourth quarter).
SCHEDULE = {0: 1, 20: 5, 50: 3, 190: 8, 300: 10}
STEP_DAYS = 10


def months_later(start: date, months: int) -> date:
    """The test's own calendar: ``months`` after ``start``, the day clamped to the month's length."""
    year, month = divmod(start.month - 1 + months, 12)
    last = calendar.monthrange(start.year + year, month + 1)[1]
    return date(start.year + year, month + 1, min(start.day, last))


def expected_true_forwards(start: date, counts: dict[date, int]) -> list[tuple[int, int, int]]:
    """(quarter, overage seats, cents) of each quarter 1..3 needing a true-forward: the peak of the quarter's daily
    counts above the seats purchased so far, x price x remaining quarters / 4, rounded half up once."""
    purchased, found = PURCHASED, []
    for q in (1, 2, 3):
        first, end = months_later(start, 3 * (q - 1)), months_later(start, 3 * q)
        peak = max(seats for day, seats in counts.items() if first <= day < end)
        if peak > purchased:
            exact = Fraction((peak - purchased) * PRICE * (4 - q), 4)
            found.append((q, peak - purchased, math.floor(exact + Fraction(1, 2))))
            purchased = peak
    return found


def true_forwards(contract_id: uuid.UUID) -> list[tuple[int, int, int]]:
    with session_scope() as session:
        rows = session.scalars(
            select(ContractInvoice).where(
                ContractInvoice.contract_id == contract_id, ContractInvoice.kind == "true_forward"
            )
        ).all()
        return sorted((row.quarter, row.seats, row.amount_cents) for row in rows)


def test_a_contract_year_of_rising_seats_is_trued_forward_once_per_quarter(
    billed: BilledPlane, stripe_client: stripe.StripeClient
) -> None:
    plane = billed.plane
    plane.start_worker()
    workspace_id = plane.create_workspace("ctyear", tier=Tier.enterprise)
    billed.settled(workspace_id, Lifecycle.active)
    org = plane.row(workspace_id).organization_id
    billed.advance_to_next(12)
    start = utcnow().date()
    created = plane.api.post(
        "/api/v1/contracts",
        json={
            "organization_id": str(org),
            "seats_purchased": PURCHASED,
            "annual_price_per_seat_cents": PRICE,
            "start_date": start.isoformat(),
            "billing_contact_email": "ap@ctyear.example",
            "billing_contact_name": "AP",
        },
        headers=plane.staff_headers(Role.sales),
    )
    assert created.status_code == 201, created.text
    contract_id = uuid.UUID(created.json()["id"])
    plane.stop_workers()  # from here on the test runs the contract's jobs itself

    admin = billed.driver(workspace_id, "ctyear.admin@example.com")
    team_id = admin.teams.get_user_teams("me")[0]["id"]
    active: list[str] = []
    counts: dict[date, int] = {}
    seen_after_rerun: list[tuple[int, int, int]] = []
    while (today := utcnow().date()) < months_later(start, 12):
        wanted = SCHEDULE[max(day for day in SCHEDULE if day <= (today - start).days)]
        while 1 + len(active) < wanted:
            n = len(counts) * 10 + len(active)
            user = admin.users.create_user(
                {"email": f"y{n}@ctyear.example", "username": f"ctyear{n}", "password": PASSWORD}
            )
            admin.teams.add_user_to_team(team_id, {"team_id": team_id, "user_id": user["id"]})
            active.append(user["id"])
        while 1 + len(active) > wanted:
            admin.users.deactivate_user(active.pop())
        assert billed.collect_seats() == 1
        counts[today] = wanted
        contract_run(contract_id)
        seen = true_forwards(contract_id)
        contract_run(contract_id)  # a rerun of the same job
        assert true_forwards(contract_id) == seen
        assert seen[: len(seen_after_rerun)] == seen_after_rerun  # nothing issued before ever changes
        seen_after_rerun = seen
        billed.advance(timedelta(days=STEP_DAYS))
    contract_run(contract_id)

    expected = expected_true_forwards(start, counts)
    assert [q for q, _, _ in expected] == [1, 3]  # quarter 2 needed none
    assert true_forwards(contract_id) == expected
    with session_scope() as session:
        contract = session.get(Contract, contract_id)
        assert contract is not None and contract.seats_purchased == 8
        rows = session.scalars(select(ContractInvoice).where(ContractInvoice.contract_id == contract_id)).all()
        held = {row.gateway_invoice_id: row.amount_cents for row in rows}
    assert None not in held
    for gateway_id, cents in held.items():
        assert stripe_client.v1.invoices.retrieve(str(gateway_id)).amount_due == cents
