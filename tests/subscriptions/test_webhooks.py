"""The Stripe webhook end to end: localstripe delivers signed events over HTTP to the control plane, served on a
loopback port; the inbox keeps each event once; the workers apply it by reading the object from Stripe again.

Organizations are billed through product paths (tests/subscriptions/stripe_side.py: a provisioned Professional
workspace, a card made as Stripe.js makes it and added through the billing API, the billing run asked of the
workers); payments and card changes "at Stripe" are made through the SDK. Deliveries are localstripe's, with its
signatures; only the forged and replayed ones are signed here, the way Stripe signs.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import stripe
from prometheus_client.parser import text_string_to_metric_families

from control_plane.app import create_app
from control_plane.core.settings import get_settings
from control_plane.subscriptions.models import InvoiceState
from tests.billed_plane import BilledPlane, _workers_end_with_their_test  # noqa: F401
from tests.billing.receivers import Received, Recorder, serve
from tests.billing.test_webhooks import sign
from tests.harness.localstripe import LocalStripe
from tests.subscriptions.stripe_side import (
    FAILING_CARD,
    GOOD_CARD,
    Billed,
    billed_organization,
    card,
    event_body,
    first_invoice,
    invoices,
    serving,
    stored_events,
    subscription,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

OLD_SECRET = "whsec_rotating_out_4f1c2a"
NEW_SECRET = "whsec_current_9b7e3d"
PATH = "/api/v1/billing/stripe/webhook"
HOOK = "canopy-control-plane"
RECORDER = "canopy-recorder"


@dataclass
class Hooked:
    """The billed control plane on a real port, registered at localstripe for every event."""

    billed: BilledPlane
    url: str
    localstripe: LocalStripe

    def post(self, body: bytes, signature: str | None) -> httpx.Response:
        """A delivery to the webhook route, as Stripe makes it."""
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if signature is not None:
            headers["Stripe-Signature"] = signature
        return httpx.post(self.url + PATH, content=body, headers=headers, timeout=10)

    def redeliver(self, received: Received) -> httpx.Response:
        """A delivery recorded elsewhere, sent again as it was (body and localstripe's signature)."""
        return self.post(received.body, received.headers["Stripe-Signature"])

    def register(self, secret: str = NEW_SECRET) -> None:
        """Have localstripe deliver every event here, signed with ``secret``."""
        self.localstripe.register_webhook(HOOK, self.url + PATH, secret)

    def ensure_worker(self) -> None:
        """A worker to apply the events (stopped when the test ends)."""
        if not self.billed.plane.workers:
            self.billed.plane.start_worker()


@pytest.fixture(scope="module")
def hooked(billed: BilledPlane, localstripe: LocalStripe) -> Iterator[Hooked]:
    """The control plane with two webhook secrets (a rotation), on a loopback port localstripe delivers to."""
    patch = pytest.MonkeyPatch()
    patch.setenv("CANOPY_STRIPE_WEBHOOK_SECRETS", json.dumps([OLD_SECRET, NEW_SECRET]))
    get_settings.cache_clear()
    try:
        with serving(create_app()) as url:
            hooked = Hooked(billed, url, localstripe)
            hooked.register()
            try:
                yield hooked
            finally:
                localstripe.forget_webhook(HOOK)
    finally:
        patch.undo()
        get_settings.cache_clear()


@pytest.fixture
def recorder(hooked: Hooked) -> Iterator[Recorder]:
    """A second endpoint localstripe delivers every event to, after the control plane (same secret): it keeps
    each delivery as sent, so a test can send it again; once it holds one, the control plane has answered it."""
    with serve(lambda _: (200, b"{}")) as (url, recording):
        hooked.localstripe.register_webhook(RECORDER, url + PATH, NEW_SECRET)
        try:
            yield recording
        finally:
            hooked.localstripe.forget_webhook(RECORDER)
            hooked.register()  # a test may have changed the control plane's registration


def delivered(
    recorder: Recorder, event_type: str, object_id: str, holding: Callable[[dict[str, Any]], bool] = lambda _: True
) -> Received:
    """The recorded delivery of the ``event_type`` event about ``object_id`` (its object ``holding`` something)."""

    def about(received: Received) -> bool:
        event = json.loads(received.body)
        obj = event["data"]["object"]
        return bool(event["type"] == event_type and obj["id"] == object_id and holding(obj))

    return recorder.wait_for(about, timeout=30)


def event_id(received: Received) -> str:
    return str(json.loads(received.body)["id"])


def applied(event: str) -> bool:
    return [e.processed_at is not None for e in stored_events(id=event)] == [True]


def applied_about(event_type: str, object_id: str) -> bool:
    """Whether an ``event_type`` event about ``object_id`` was received and applied."""
    events = stored_events(type=event_type, object_id=object_id)
    return bool(events) and all(e.processed_at is not None for e in events)


def new_customer(stripe_client: stripe.StripeClient) -> str:
    """A Stripe customer of nobody's: its events are stored, then applied as changing nothing."""
    params: Any = {"email": f"{uuid.uuid4().hex[:8]}@example.com"}
    return str(stripe_client.v1.customers.create(params).id)


def test_a_delivery_is_stored_once_and_applied_once_however_often_it_comes(
    hooked: Hooked, recorder: Recorder, stripe_client: stripe.StripeClient
) -> None:
    hooked.ensure_worker()
    customer_id = new_customer(stripe_client)
    received = delivered(recorder, "customer.created", customer_id)
    wait_until("the event applied", lambda: applied(event_id(received)))
    [stored] = stored_events(id=event_id(received))
    assert (stored.type, stored.object_type, stored.object_id) == ("customer.created", "customer", customer_id)

    for _ in range(3):  # Stripe delivers again when it misses an answer: each is acknowledged, none is kept
        r = hooked.redeliver(received)
        assert (r.status_code, r.json()) == (200, {"received": True})
    [again] = stored_events(id=event_id(received))
    assert (again.received_at, again.processed_at) == (stored.received_at, stored.processed_at)  # applied once


def test_either_secret_verifies_during_a_rotation(
    hooked: Hooked, recorder: Recorder, stripe_client: stripe.StripeClient
) -> None:
    hooked.ensure_worker()
    for secret in (OLD_SECRET, NEW_SECRET):
        hooked.register(secret)
        received = delivered(recorder, "customer.created", new_customer(stripe_client))
        assert stored_events(id=event_id(received)), f"the delivery signed with {secret[:14]} was not kept"
    hooked.register("whsec_retired_0000")  # neither configured secret: localstripe's delivery is refused
    received = delivered(recorder, "customer.created", new_customer(stripe_client))
    assert stored_events(id=event_id(received)) == []  # answered before the recorder's copy went out


def test_forged_altered_and_replayed_deliveries_are_refused_and_keep_nothing(hooked: Hooked) -> None:
    forged = f"evt_forged_{uuid.uuid4().hex[:12]}"
    body = event_body(forged, "invoice.payment_succeeded", {"object": "invoice", "id": "in_forged"})
    now = int(time.time())
    refused = {
        "unsigned": hooked.post(body, None),
        "guessed secret": hooked.post(body, sign(body, "whsec_guessed", now)),
        "altered body": hooked.post(body.replace(b"in_forged", b"in_other"), sign(body, NEW_SECRET, now)),
        "replayed an hour later": hooked.post(body, sign(body, NEW_SECRET, now - 3600)),
        "not UTF-8": hooked.post(b"\xff" + body, sign(b"\xff" + body, NEW_SECRET, now)),
    }
    for what, r in refused.items():
        assert r.status_code == 400, what
        assert r.headers["content-type"] == "application/problem+json", what
        assert r.json()["type"] == "https://canopy.dev/problems/invalid-webhook", what
    huge = event_body(forged, "invoice.payment_succeeded", {"object": "invoice", "id": "in_forged", "pad": "x" * 2**20})
    r = hooked.post(huge, sign(huge, NEW_SECRET, now))
    assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"
    assert stored_events(id=forged) == []
    # The same body, signed now with the configured secret, is taken: the refusals were the signature's.
    assert hooked.post(body, sign(body, NEW_SECRET, now)).status_code == 200
    assert [e.object_id for e in stored_events(id=forged)] == ["in_forged"]


def test_a_signed_event_with_nul_text_is_taken_and_one_with_unstorable_ids_is_refused(hooked: Hooked) -> None:
    now = int(time.time())
    kept = f"evt_nul_{uuid.uuid4().hex[:12]}"
    with_nul = event_body(kept, "customer.updated", {"object": "customer", "id": "cus_nul", "name": "a\u0000b"})
    assert hooked.post(with_nul, sign(with_nul, NEW_SECRET, now)).status_code == 200  # a genuine event, NUL and all
    assert [e.object_id for e in stored_events(id=kept)] == ["cus_nul"]
    bad_id = event_body("evt_\u0000bad", "customer.updated", {"object": "customer", "id": "cus_x"})
    r = hooked.post(bad_id, sign(bad_id, NEW_SECRET, now))
    assert r.status_code == 400 and r.json()["type"].endswith("/invalid-webhook")


def test_without_a_secret_the_route_refuses_to_serve(hooked: Hooked) -> None:
    body = event_body(f"evt_{uuid.uuid4().hex[:12]}", "customer.updated", {"object": "customer", "id": "cus_x"})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CANOPY_STRIPE_WEBHOOK_SECRETS", "[]")
        get_settings.cache_clear()
        r = hooked.post(body, sign(body, NEW_SECRET, int(time.time())))
    get_settings.cache_clear()
    assert r.status_code == 503
    assert r.json()["type"] == "https://canopy.dev/problems/webhooks-not-configured"
    assert stored_events(id=json.loads(body)["id"]) == []


def past_due(hooked: Hooked, stripe_client: stripe.StripeClient, slug: str) -> tuple[Billed, str]:
    """An organization whose first invoice failed at charge (a card that fails): past due, the invoice open."""
    organization = billed_organization(hooked.billed, stripe_client, slug, FAILING_CARD)
    invoice = first_invoice(hooked.billed, organization)
    organization_id = organization.organization_id
    wait_until("past due", lambda: subscription(organization_id).status == "past_due", timeout=30)
    assert invoice.state is InvoiceState.open and invoice.gateway_invoice_id is not None
    return organization, invoice.gateway_invoice_id


def pay_at_stripe(stripe_client: stripe.StripeClient, customer_id: str, invoice_id: str) -> str:
    """What someone does in Stripe's dashboard: a good card made the customer's default, the invoice paid with it."""
    payment_method = card(stripe_client, GOOD_CARD)
    stripe_client.v1.payment_methods.attach(payment_method, {"customer": customer_id})
    params: Any = {"invoice_settings": {"default_payment_method": payment_method}}
    stripe_client.v1.customers.update(customer_id, params)
    stripe_client.v1.invoices.pay(invoice_id)
    return payment_method


def assert_paid_once_at_stripe(
    stripe_client: stripe.StripeClient, organization: Billed, invoice_id: str, payment_method: str
) -> None:
    """Canopy holds what Stripe holds: the invoice paid, the plan active, the new card; one successful charge."""
    organization_id = organization.organization_id
    [invoice] = [i for i in invoices(organization_id) if i.gateway_invoice_id == invoice_id]
    assert invoice.state is InvoiceState.paid and invoice.paid_at is not None and invoice.last_failure is None
    sub = subscription(organization_id)
    assert (sub.status, sub.payment_method_id, sub.card_last4) == ("active", payment_method, "4242")
    held = stripe_client.v1.invoices.retrieve(invoice_id)
    assert (held.status, held.amount_paid) == ("paid", invoice.amount_cents)
    charges = stripe_client.v1.charges.list({"customer": organization.customer_id, "limit": 100}).data
    assert [c.amount for c in charges if c.status == "succeeded"] == [invoice.amount_cents]


def test_a_payment_made_at_stripe_reaches_canopy_through_the_webhook(
    hooked: Hooked, stripe_client: stripe.StripeClient
) -> None:
    organization, invoice_id = past_due(hooked, stripe_client, "paidatstripe")
    payment_method = pay_at_stripe(stripe_client, organization.customer_id, invoice_id)
    organization_id = organization.organization_id

    def settled() -> bool:
        sub = subscription(organization_id)
        return sub.status == "active" and sub.payment_method_id == payment_method

    wait_until("the payment and the card applied", settled)
    wait_until("Stripe's word on the invoice applied", lambda: applied_about("invoice.payment_succeeded", invoice_id))
    assert_paid_once_at_stripe(stripe_client, organization, invoice_id, payment_method)


def test_reordered_and_repeated_deliveries_reach_the_same_state_and_charge_nothing(
    hooked: Hooked, recorder: Recorder, stripe_client: stripe.StripeClient
) -> None:
    organization, invoice_id = past_due(hooked, stripe_client, "reordered")
    # Every delivery so far applied (each reads Stripe when applied: a late one would see the payment below).
    delivered(recorder, "customer.created", new_customer(stripe_client))  # the last event made so far
    wait_until("every delivery applied", lambda: all(e.processed_at for e in stored_events()))
    hooked.localstripe.forget_webhook(HOOK)  # Stripe's deliveries are held back; the recorder keeps them
    payment_method = pay_at_stripe(stripe_client, organization.customer_id, invoice_id)
    intent = str(stripe_client.v1.invoices.retrieve(invoice_id).to_dict()["payment_intent"])

    def new_default(customer: dict[str, Any]) -> bool:
        return bool(customer["invoice_settings"]["default_payment_method"] == payment_method)

    in_order = [
        delivered(recorder, "customer.updated", organization.customer_id, new_default),
        delivered(recorder, "payment_intent.succeeded", intent),
        delivered(recorder, "invoice.payment_succeeded", invoice_id),
    ]
    hooked.register()
    assert subscription(organization.organization_id).status == "past_due"  # nothing reached Canopy yet

    for received in [*reversed(in_order), *in_order]:  # newest first, then every one again in order
        assert hooked.redeliver(received).status_code == 200
    wait_until("every delivery applied", lambda: all(applied(event_id(r)) for r in in_order))
    for received in reversed(in_order):  # and once more, after they were applied
        assert hooked.redeliver(received).status_code == 200
    wait_until("the plan active again", lambda: subscription(organization.organization_id).status == "active")
    assert_paid_once_at_stripe(stripe_client, organization, invoice_id, payment_method)
    assert all(len(stored_events(id=event_id(r))) == 1 for r in in_order)


def test_metrics_count_the_events_not_applied_yet(hooked: Hooked, stripe_client: stripe.StripeClient) -> None:
    def unprocessed() -> tuple[float, int]:
        text = httpx.get(hooked.url + "/metrics", timeout=10).text
        [family] = [f for f in text_string_to_metric_families(text) if f.name == "canopy_stripe_events_unprocessed"]
        return family.samples[0].value, len([e for e in stored_events() if e.processed_at is None])

    hooked.billed.plane.stop_workers()  # nothing applies events for now
    customer_id = new_customer(stripe_client)
    wait_until("the event stored", lambda: bool(stored_events(object_id=customer_id)))
    shown, waiting = unprocessed()
    assert shown >= 1 and waiting >= 1
    hooked.ensure_worker()
    wait_until("every event applied", lambda: unprocessed() == (0, 0))


def test_an_event_of_no_interest_is_marked_applied(hooked: Hooked, stripe_client: stripe.StripeClient) -> None:
    hooked.ensure_worker()
    product = stripe_client.v1.products.create({"name": f"Unrelated {uuid.uuid4().hex[:6]}"})
    wait_until("the product event applied", lambda: any(e.processed_at for e in stored_events(object_id=product.id)))
    assert {e.type for e in stored_events(object_id=product.id)} == {"product.created"}
