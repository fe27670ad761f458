"""Dunning with a card that fails at charge (``pm_card_chargeCustomerFail``): past due with the workspace still
working, retries 2, 5 and 7 days after the first failure with a mail each, then unpaid and the workspace
suspended (posting refused, reading works); a good card restores everything at once, charged once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta

import pytest
import stripe
from mattermostdriver.exceptions import NotEnoughPermissions
from sqlalchemy import select

from control_plane.core.clock import utcnow
from control_plane.core.db import session_scope
from control_plane.mail.models import OutboxMail
from control_plane.subscriptions.models import Invoice, Subscription
from control_plane.workspaces.lifecycle import Lifecycle
from tests.billed_plane import BilledPlane


def status_of(organization_id: uuid.UUID) -> str:
    with session_scope() as session:
        sub = session.get(Subscription, organization_id)
        assert sub is not None
        return sub.status.value


def trial_ends_at(organization_id: uuid.UUID) -> datetime:
    with session_scope() as session:
        sub = session.get(Subscription, organization_id)
        assert sub is not None
        return sub.trial_ends_at


def the_invoice(organization_id: uuid.UUID) -> Invoice:
    with session_scope() as session:
        (invoice,) = session.scalars(select(Invoice).where(Invoice.organization_id == organization_id)).all()
        session.expunge(invoice)
        return invoice


def subjects_to(address: str) -> list[str]:
    with session_scope() as session:
        return list(session.scalars(select(OutboxMail.subject).where(OutboxMail.to_address == address)))


def test_a_failing_card_goes_past_due_then_unpaid_and_a_good_card_restores_it(
    billed: BilledPlane, stripe_client: stripe.StripeClient
) -> None:
    workspace_id, org = billed.professional_workspace("dunning")
    owner = "dunning.admin@example.com"
    failing = billed.billing_api(
        workspace_id, "POST", "/card", json={"payment_method_id": "pm_card_chargeCustomerFail"}
    )
    assert failing.status_code == 200, failing.text
    channel = billed.driver(workspace_id, owner).channels.get_channel_by_name_and_team_name("dunning", "town-square")

    # Past the trial (the card is kept), then to the next month's first day: its invoice fails.
    billed.collect_seats()
    billed.advance(trial_ends_at(org) + timedelta(minutes=1) - utcnow())
    billed.bill(org)
    assert status_of(org) == "active"
    first_of_next_month = (utcnow().date().replace(day=28) + timedelta(days=4)).replace(day=1)
    billed.advance(datetime.combine(first_of_next_month, time(1), tzinfo=UTC) - utcnow())
    billed.bill(org)
    invoice = the_invoice(org)
    assert invoice.first_failure_at is not None
    assert (status_of(org), invoice.state.value, invoice.attempts) == ("past_due", "open", 1)
    billed.settled(workspace_id, Lifecycle.past_due)
    driver = billed.driver(workspace_id, owner)
    driver.posts.create_post({"channel_id": channel["id"], "message": "still working while past due"})
    # Admins see the payment trouble where Mattermost's web app reads it for its banner (Unix seconds).
    assert driver.client.get("/cloud/subscription")["delinquent_since"] == int(invoice.first_failure_at.timestamp())
    assert any(subject.startswith("Payment of") for subject in subjects_to(owner))

    # Retries at 2, 5 and 7 days after the first failure, one charge and one mail each; nothing in between.
    for days_after, attempts in ((1, 1), (2, 2), (4, 2), (5, 3), (7, 4)):
        billed.advance(invoice.first_failure_at + timedelta(days=days_after, minutes=1) - utcnow())
        billed.bill(org)
        assert the_invoice(org).attempts == attempts, days_after
    assert len([s for s in subjects_to(owner) if s.startswith("Payment of")]) == 4
    assert status_of(org) == "unpaid"
    billed.settled(workspace_id, Lifecycle.suspended)

    # Suspended: reading and search work, posting is refused with the workspace server's error.
    driver = billed.driver(workspace_id, owner)
    assert driver.posts.get_posts_for_channel(channel["id"])["order"]
    assert driver.posts.search_for_team_posts(channel["team_id"], {"terms": "working"})["order"]
    with pytest.raises(NotEnoughPermissions):
        driver.posts.create_post({"channel_id": channel["id"], "message": "refused"})

    # A good card: the open invoice is charged at once (once), billing and the workspace are active again.
    good = billed.billing_api(workspace_id, "POST", "/card", json={"payment_method_id": "pm_card_visa"})
    assert good.status_code == 200, good.text
    billed.bill(org)
    assert status_of(org) == "active"
    billed.settled(workspace_id, Lifecycle.active)
    driver.posts.create_post({"channel_id": channel["id"], "message": "back"})
    paid = the_invoice(org)
    held = stripe_client.v1.invoices.retrieve(str(paid.gateway_invoice_id))
    assert (paid.state.value, held.status, held.amount_paid) == ("paid", "paid", paid.amount_cents)
    charges = stripe_client.v1.charges.list({"customer": str(held.customer), "limit": 100}).data
    assert [c.amount for c in charges if c.status == "succeeded"] == [paid.amount_cents]
