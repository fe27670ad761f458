"""Stripe webhook signatures, verified on the raw body against every configured secret (rotation).

A delivery is accepted when its ``Stripe-Signature`` header carries a valid ``v1`` signature of the raw body by
any of the secrets and its timestamp is within the tolerance of now (replays of old deliveries are refused).
With no secret configured nothing is accepted (:class:`WebhookNotConfigured`): the route must refuse to serve.
What is returned is only the event's identity: its consumer re-reads the object from Stripe rather than trust
the delivered copy or the order of arrival.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import stripe

DEFAULT_TOLERANCE_SECONDS = 300


class WebhookNotConfigured(Exception):
    """No webhook secret is configured."""


class InvalidWebhook(Exception):
    """The delivery is not a signed Stripe event (bad or missing signature, too old, or not an event)."""


@dataclass(frozen=True)
class WebhookEvent:
    """A verified event: its id (unique, for the inbox), type, creation time and the object it is about."""

    id: str
    type: str
    created: int
    object_type: str
    object_id: str


def verify_webhook(
    payload: bytes,
    signature_header: str | None,
    secrets: Sequence[str],
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> WebhookEvent:
    """The event of a delivery whose signature one of ``secrets`` verifies; raise :class:`InvalidWebhook` else."""
    if not [secret for secret in secrets if secret]:
        raise WebhookNotConfigured("no Stripe webhook secret is configured")
    if not signature_header:
        raise InvalidWebhook("no Stripe-Signature header")
    try:
        body = payload.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidWebhook("the body is not UTF-8") from e
    if not any(_verifies(body, signature_header, secret, tolerance_seconds) for secret in secrets if secret):
        raise InvalidWebhook("no configured secret verifies the signature")
    return _event(body)


def _verifies(body: str, header: str, secret: str, tolerance_seconds: int) -> bool:
    try:
        stripe.WebhookSignature.verify_header(body, header, secret, tolerance_seconds)
    except stripe.SignatureVerificationError:
        return False
    return True


MAX_IDENTIFIER_CHARS = 255


def _event(body: str) -> WebhookEvent:
    try:
        raw = json.loads(body)
        obj = raw["data"]["object"]
        event = WebhookEvent(str(raw["id"]), str(raw["type"]), int(raw["created"]), str(obj["object"]), str(obj["id"]))
    except (ValueError, KeyError, TypeError) as e:
        raise InvalidWebhook("the body is not a Stripe event") from e
    identifiers = (event.id, event.type, event.object_type, event.object_id)
    if not all(0 < len(text) <= MAX_IDENTIFIER_CHARS and text.isprintable() for text in identifiers):
        raise InvalidWebhook("the event's identifiers are not Stripe's")  # what is stored of it must be storable
    return event
