"""SIGKILL of the worker in the middle of an invoicing run: the next worker completes it, and every organization
is invoiced and charged exactly once (our unique invoice row, and the gateway finding what the killed run made)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta

import pytest
import stripe
from sqlalchemy import select

from control_plane.core.clock import utcnow
from control_plane.core.db import session_scope
from control_plane.subscriptions.models import Invoice, InvoiceState, Subscription
from tests.billed_plane import BilledPlane
from tests.waiting import wait_until

ORGANIZATIONS = 3


def invoices_of(organization_id: uuid.UUID) -> list[Invoice]:
    with session_scope() as session:
        rows = list(session.scalars(select(Invoice).where(Invoice.organization_id == organization_id)))
        for row in rows:
            session.expunge(row)
        return rows


def latest_trial_end(organization_ids: list[uuid.UUID]) -> datetime:
    with session_scope() as session:
        return max(
            sub.trial_ends_at
            for sub in session.scalars(select(Subscription).where(Subscription.organization_id.in_(organization_ids)))
        )


@pytest.mark.parametrize("killed_after", ["billing:invoice-created", "billing:charged"])
def test_a_worker_killed_while_invoicing_leaves_each_organization_invoiced_and_charged_once(
    billed: BilledPlane, stripe_client: stripe.StripeClient, killed_after: str
) -> None:
    tag = killed_after.split(":")[1].split("-")[0]
    orgs = []
    for index in range(ORGANIZATIONS):
        workspace_id, org = billed.professional_workspace(f"crash-{tag}-{index}")
        response = billed.billing_api(workspace_id, "POST", "/card", json={"payment_method_id": "pm_card_visa"})
        assert response.status_code == 200, response.text
        orgs.append(org)
    billed.collect_seats()
    billed.advance(latest_trial_end(orgs) + timedelta(minutes=1) - utcnow())
    for org in orgs:
        billed.bill(org)  # the trials end: billing starts
    first_of_next_month = (utcnow().date().replace(day=28) + timedelta(days=4)).replace(day=1)
    billed.advance(datetime.combine(first_of_next_month, time(1), tzinfo=UTC) - utcnow())
    billed.plane.stop_workers()

    faulty = billed.plane.start_worker(
        concurrency=1, CANOPY_BILLING_RUN_SECONDS="1", CANOPY_FAULT_PAUSE_AFTER_STEP=killed_after
    )
    wait_until(
        lambda: f"the pause after {killed_after}\n{billed.plane.worker_logs()}",
        lambda: f"pausing after {killed_after}" in billed.plane.worker_logs(),
        timeout=60,
    )
    faulty.kill()
    faulty.wait()
    billed.plane.workers.remove(faulty)

    billed.plane.start_worker(CANOPY_BILLING_RUN_SECONDS="1")
    wait_until(
        lambda: f"every organization's invoice paid\n{billed.plane.worker_logs()}",
        lambda: all([i.state for i in invoices_of(org)] == [InvoiceState.paid] for org in orgs),
        timeout=90,
    )
    for org in orgs:
        (invoice,) = invoices_of(org)
        held = stripe_client.v1.invoices.retrieve(str(invoice.gateway_invoice_id))
        customer = str(held.customer)
        at_stripe = [
            i for i in stripe_client.v1.invoices.list({"customer": customer, "limit": 100}).data if i.amount_due
        ]
        charges = stripe_client.v1.charges.list({"customer": customer, "limit": 100}).data
        assert [i.id for i in at_stripe] == [invoice.gateway_invoice_id]
        assert (held.status, held.amount_paid) == ("paid", invoice.amount_cents)
        assert [c.amount for c in charges if c.status == "succeeded"] == [invoice.amount_cents]
