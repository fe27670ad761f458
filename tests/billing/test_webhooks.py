"""Webhook signatures: real events signed by localstripe, delivered over HTTP, verified with rotating secrets."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator

import pytest
import stripe

from billing.stripe_gateway import StripeApi, StripeGateway
from billing.webhooks import InvalidWebhook, WebhookNotConfigured, verify_webhook
from tests.billing.receivers import Received, serve
from tests.harness.localstripe import LocalStripe

OLD_SECRET = "whsec_old_0123456789"
NEW_SECRET = "whsec_new_9876543210"


@pytest.fixture
def delivered(localstripe: LocalStripe, stripe_client: stripe.StripeClient) -> Iterator[tuple[Received, str]]:
    """A real ``customer.created`` delivery from localstripe, signed with the new secret, and the customer's id."""
    with serve(lambda _: (200, b"{}")) as (url, recorder):
        localstripe.register_webhook("canopy-test", f"{url}/api/v1/billing/stripe/webhook", NEW_SECRET)
        try:
            customer = StripeGateway(stripe_client, StripeApi.localstripe).ensure_customer(
                "org-1", "o@example.com", "A"
            )
            # localstripe may still deliver an earlier test's events to whatever is registered now: wait for ours.
            ours = customer.id.encode()
            yield recorder.wait_for(lambda r: b'"customer.created"' in r.body and ours in r.body), customer.id
        finally:
            localstripe.forget_webhook("canopy-test")


def sign(body: bytes, secret: str, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def test_a_delivery_verifies_with_either_secret_during_rotation(delivered: tuple[Received, str]) -> None:
    received, customer_id = delivered
    assert received.method == "POST" and received.path == "/api/v1/billing/stripe/webhook"
    header = received.headers["Stripe-Signature"]
    for secrets in ([OLD_SECRET, NEW_SECRET], [NEW_SECRET, OLD_SECRET], [NEW_SECRET]):
        event = verify_webhook(received.body, header, secrets)
        assert (event.type, event.object_type, event.object_id) == ("customer.created", "customer", customer_id)
        assert event.id.startswith("evt_")
    # the SDK's own verification agrees on the same raw body
    assert stripe.Webhook.construct_event(received.body.decode(), header, NEW_SECRET).id == event.id


def test_a_delivery_signed_with_a_retired_secret_is_refused(delivered: tuple[Received, str]) -> None:
    received, _ = delivered
    with pytest.raises(InvalidWebhook, match="no configured secret"):
        verify_webhook(received.body, received.headers["Stripe-Signature"], [OLD_SECRET])


def test_a_forged_or_altered_delivery_is_refused(delivered: tuple[Received, str]) -> None:
    received, _ = delivered
    header = received.headers["Stripe-Signature"]
    altered = received.body.replace(b'"customer.created"', b'"customer.deleted"')
    with pytest.raises(InvalidWebhook):
        verify_webhook(altered, header, [NEW_SECRET])
    with pytest.raises(InvalidWebhook, match="no Stripe-Signature"):
        verify_webhook(received.body, None, [NEW_SECRET])
    with pytest.raises(InvalidWebhook):
        verify_webhook(received.body, sign(received.body, "whsec_guess", int(time.time())), [NEW_SECRET])
    with pytest.raises(InvalidWebhook, match="UTF-8"):
        verify_webhook(b"\xff" + received.body, header, [NEW_SECRET])


def test_a_replayed_old_delivery_is_refused(delivered: tuple[Received, str]) -> None:
    received, _ = delivered
    assert verify_webhook(received.body, sign(received.body, NEW_SECRET, int(time.time())), [NEW_SECRET])
    an_hour_ago = int(time.time()) - 3600
    with pytest.raises(InvalidWebhook):
        verify_webhook(received.body, sign(received.body, NEW_SECRET, an_hour_ago), [NEW_SECRET])


def test_a_signed_body_that_is_not_an_event_is_refused() -> None:
    body = json.dumps({"id": "evt_1", "type": "x"}).encode()
    with pytest.raises(InvalidWebhook, match="not a Stripe event"):
        verify_webhook(body, sign(body, NEW_SECRET, int(time.time())), [NEW_SECRET])


def test_without_a_secret_nothing_is_accepted() -> None:
    body = b"{}"
    for secrets in ([], [""]):
        with pytest.raises(WebhookNotConfigured):
            verify_webhook(body, sign(body, "", int(time.time())), secrets)
