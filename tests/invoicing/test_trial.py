"""The 14-day trial without a card: admins see its end through Mattermost's client endpoints, mails go out at 7
and 1 days left and on the last day (each once), its end suspends the workspace, 30 days later it hibernates,
and a card brings it back active with everything in it. Cancelling stops billing at the period's end."""

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
from tests.reconciler.conftest import server_pids


def subscription(organization_id: uuid.UUID) -> Subscription:
    with session_scope() as session:
        sub = session.get(Subscription, organization_id)
        assert sub is not None
        session.expunge(sub)
        return sub


def trial_mails(address: str) -> list[str]:
    with session_scope() as session:
        subjects = session.scalars(select(OutboxMail.subject).where(OutboxMail.to_address == address))
        return [subject for subject in subjects if "trial" in subject]


def test_a_trial_without_a_card_ends_read_only_then_hibernates_and_a_card_restores_everything(
    billed: BilledPlane, stripe_client: stripe.StripeClient
) -> None:
    workspace_id, org = billed.professional_workspace("trialonly")
    owner = "trialonly.admin@example.com"
    sub = subscription(org)
    assert sub.trial_ends_at - sub.trial_started_at == timedelta(days=14)
    driver = billed.driver(workspace_id, owner)
    ends_ms = int(sub.trial_ends_at.timestamp() * 1000)
    cloud = driver.client.get("/cloud/subscription")
    assert (cloud["is_free_trial"], cloud["trial_end_at"]) == ("true", ends_ms)
    licence = driver.client.get("/license/client", params={"format": "old"})
    assert licence["IsTrial"] == "true"
    channel = driver.channels.get_channel_by_name_and_team_name("trialonly", "town-square")
    driver.posts.create_post({"channel_id": channel["id"], "message": "kept through everything"})

    # The notices: each once, on its day (the run goes daily and twice on some days).
    last_day = (sub.trial_ends_at - timedelta(microseconds=1)).date()
    expected = {
        7: "Your Canopy trial ends in 7 days",
        1: "Your Canopy trial ends tomorrow",
        0: "Your Canopy trial ends today",
    }
    sent: list[str] = []
    for days_left in (8, 7, 7, 2, 1, 0, 0):
        day = last_day - timedelta(days=days_left)
        billed.advance(max(timedelta(0), datetime.combine(day, time(0, 30), tzinfo=UTC) - utcnow()))
        billed.bill(org)
        if days_left in expected and expected[days_left] not in sent:
            sent.append(expected[days_left])
        assert trial_mails(owner) == sent, days_left
    assert subscription(org).status.value == "trialing"

    # The trial ends without a card: read-only at once, nothing lost.
    billed.advance(sub.trial_ends_at + timedelta(minutes=1) - utcnow())
    billed.bill(org)
    assert subscription(org).status.value == "unpaid"
    billed.settled(workspace_id, Lifecycle.suspended)
    with pytest.raises(NotEnoughPermissions):
        driver.posts.create_post({"channel_id": channel["id"], "message": "refused"})
    assert driver.posts.search_for_team_posts(channel["team_id"], {"terms": "everything"})["order"]

    # 30 days suspended: hibernated (no process), the data kept.
    billed.advance(timedelta(days=29))
    billed.bill(org)
    assert billed.plane.row(workspace_id).lifecycle_state == Lifecycle.suspended
    billed.advance(timedelta(days=1, minutes=1))
    billed.bill(org)
    billed.settled(workspace_id, Lifecycle.hibernated)
    assert server_pids(billed.plane.runtime_dir(workspace_id)) == []

    # A card: active again at once, the server back with its posts.
    response = billed.billing_api(workspace_id, "POST", "/card", json={"payment_method_id": "pm_card_visa"})
    assert response.status_code == 200, response.text
    billed.bill(org)
    assert subscription(org).status.value == "active"
    billed.settled(workspace_id, Lifecycle.active)
    driver = billed.driver(workspace_id, owner)
    assert "kept through everything" in [
        p["message"] for p in driver.posts.get_posts_for_channel(channel["id"])["posts"].values()
    ]
    driver.posts.create_post({"channel_id": channel["id"], "message": "posting again"})
    assert driver.client.get("/cloud/subscription")["is_free_trial"] == "false"


def test_cancelling_bills_the_seat_days_used_at_the_period_end_then_suspends(
    billed: BilledPlane, stripe_client: stripe.StripeClient
) -> None:
    workspace_id, org = billed.professional_workspace("cancelling")
    assert billed.billing_api(workspace_id, "POST", "/card", json={"payment_method_id": "pm_card_visa"}).is_success
    billed.collect_seats()
    billed.advance(subscription(org).trial_ends_at + timedelta(minutes=1) - utcnow())
    billed.bill(org)
    assert subscription(org).status.value == "active"

    cancelled = billed.billing_api(workspace_id, "POST", "/cancel")
    assert cancelled.status_code == 200, cancelled.text
    period_end = datetime.combine(
        (utcnow().date().replace(day=28) + timedelta(days=4)).replace(day=1), time(0), tzinfo=UTC
    )
    assert subscription(org).cancel_at == period_end
    billed.advance(period_end - timedelta(hours=1) - utcnow())
    billed.bill(org)
    assert subscription(org).status.value == "active"  # still paid until the period's end
    billed.advance(timedelta(hours=2))
    billed.bill(org)
    assert subscription(org).status.value == "canceled"
    billed.settled(workspace_id, Lifecycle.suspended)
    with session_scope() as session:
        (final,) = session.scalars(select(Invoice).where(Invoice.organization_id == org)).all()
        assert final.final and final.state.value == "paid" and final.end_day == period_end.date()
        assert final.amount_cents == sum(line["amount_cents"] for line in final.lines) > 0
    billed.advance(timedelta(days=40))
    billed.bill(org)
    with session_scope() as session:  # nothing more is billed once cancelled
        assert len(session.scalars(select(Invoice).where(Invoice.organization_id == org)).all()) == 1
