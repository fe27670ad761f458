"""Helpers of the webhook and reconciliation tests: organizations billed through localstripe, and the control plane
served on a real loopback port (localstripe delivers webhooks over HTTP).

The Canopy side is reached through product paths: a Professional workspace provisioned by the workers (its trial
starts at the plan step), a card added through the billing API as its owner (what the billing page posts), the seats
collected as the periodic collection does, and the billing run asked of the workers (``tasks.defer_billing``, what
the billing tick does) on the clock every process shares. The Stripe side is changed through the SDK, as someone
working in Stripe's dashboard would.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

import stripe
import uvicorn
from fastapi import FastAPI
from sqlalchemy import select

from control_plane.core.clock import utcnow
from control_plane.core.db import session_scope
from control_plane.subscriptions import tasks
from control_plane.subscriptions.models import Invoice, StripeEvent, Subscription
from tests.billed_plane import BilledPlane
from tests.harness.moto import _free_port
from tests.waiting import wait_until

GOOD_CARD = "4242424242424242"
FAILING_CARD = "4000000000000341"  # attaches, then every charge fails
BILLING_TIMEOUT = 60.0


@dataclass(frozen=True)
class Billed:
    """An organization billed through localstripe: its workspace, and the Stripe customer of its card."""

    workspace_id: uuid.UUID
    organization_id: uuid.UUID
    customer_id: str


def subscription(organization_id: uuid.UUID) -> Subscription:
    """The organization's subscription as stored now."""
    with session_scope() as session:
        sub = session.get(Subscription, organization_id)
        assert sub is not None
        session.expunge(sub)
        return sub


def invoices(organization_id: uuid.UUID) -> list[Invoice]:
    """The organization's invoices as stored now, oldest first."""
    with session_scope() as session:
        rows = session.scalars(
            select(Invoice).where(Invoice.organization_id == organization_id).order_by(Invoice.first_day)
        ).all()
        session.expunge_all()
        return list(rows)


def stored_events(**where: object) -> list[StripeEvent]:
    """The inbox rows matching ``where`` (column = value)."""
    with session_scope() as session:
        query = select(StripeEvent).filter_by(**where).order_by(StripeEvent.received_at)
        rows = session.scalars(query).all()
        session.expunge_all()
        return list(rows)


def card(stripe_client: stripe.StripeClient, number: str) -> str:
    """A card payment method, made as Stripe.js makes it on the billing page (``createPaymentMethod``)."""
    params: Any = {"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"}}
    return str(stripe_client.v1.payment_methods.create(params).id)


def billed_organization(billed: BilledPlane, stripe_client: stripe.StripeClient, slug: str, number: str) -> Billed:
    """A Professional workspace in its trial with a card (``number``) added and today's seats collected."""
    workspace_id, organization_id = billed.professional_workspace(slug)
    added = billed.billing_api(workspace_id, "POST", "/card", json={"payment_method_id": card(stripe_client, number)})
    assert added.status_code == 200, added.text
    sub = subscription(organization_id)
    assert sub.customer_id is not None
    assert billed.collect_seats() >= 1  # its seats from now on (a snapshot stays in force until the next)
    return Billed(workspace_id, organization_id, sub.customer_id)


def run_billing_until(organization_id: uuid.UUID, what: str, check: Callable[[], bool]) -> None:
    """Ask the workers for the organization's billing run, and wait until ``check`` holds."""
    tasks.defer_billing(organization_id)
    wait_until(what, check, timeout=BILLING_TIMEOUT)


def advance_to(billed: BilledPlane, at: datetime) -> None:
    """Move the shared clock forward to ``at`` (where an earlier organization has not moved it past already)."""
    now = utcnow()
    if at > now:
        billed.advance(at - now)


def first_invoice(billed: BilledPlane, organization: Billed) -> Invoice:
    """End the trial, then the month: the organization's first invoice, created at Stripe and charged once."""
    organization_id = organization.organization_id
    trial_ends_at = subscription(organization_id).trial_ends_at
    advance_to(billed, trial_ends_at + timedelta(hours=1))
    run_billing_until(organization_id, "the trial's end", lambda: subscription(organization_id).status != "trialing")
    first_billed = trial_ends_at + timedelta(days=1)  # the first day the paid plan is in force at midnight
    month_after = (first_billed.replace(day=28) + timedelta(days=4)).replace(day=1)
    advance_to(billed, datetime.combine(month_after.date(), time(1), tzinfo=UTC))

    def charged() -> list[Invoice]:
        return [i for i in invoices(organization_id) if i.gateway_invoice_id and i.attempts >= 1 and i.amount_cents]

    run_billing_until(organization_id, "the first invoice charged", lambda: bool(charged()))
    return charged()[0]


def event_body(event_id: str, event_type: str, obj: dict[str, object]) -> bytes:
    """A Stripe event document about ``obj`` (its ``object`` and ``id``)."""
    created = int(datetime.now(UTC).timestamp())
    return json.dumps(
        {"id": event_id, "object": "event", "type": event_type, "created": created, "data": {"object": obj}}
    ).encode()


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port in a thread of this process; yields its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=_free_port(), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="control-plane-http", daemon=True)
    thread.start()
    wait_until("the control plane to listen", lambda: server.started, timeout=30)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
