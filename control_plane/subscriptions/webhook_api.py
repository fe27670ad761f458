"""The Stripe webhook route: ``POST /api/v1/billing/stripe/webhook``.

No token and no CSRF token: the signature of the raw body is the credential. The body is read as sent (nothing
parses it before it is verified: the route is :data:`~control_plane.core.deps.RAW_BODY`); the application's body
limit (:mod:`control_plane.core.body_limit`) bounds it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel

from billing.webhooks import InvalidWebhook, WebhookNotConfigured, verify_webhook
from control_plane.core.clock import utcnow
from control_plane.core.deps import RAW_BODY, DbSession
from control_plane.core.problems import Problem, problem_responses
from control_plane.core.settings import get_settings
from control_plane.subscriptions import webhooks
from control_plane.subscriptions.event_tasks import defer_apply

TOO_LARGE: dict[int | str, dict[str, Any]] = {
    413: {**problem_responses(400)[400], "description": "The body is too large"}
}

router = APIRouter(prefix="/api/v1/billing/stripe", tags=["billing"])


class WebhookReceived(BaseModel):
    """The acknowledgement Stripe waits for."""

    received: bool = True


async def raw_body(request: Request) -> bytes:
    """The body exactly as sent."""
    return await request.body()


@router.post(
    "/webhook",
    response_model=WebhookReceived,
    responses=problem_responses(400, 503) | TOO_LARGE,
    openapi_extra={
        **RAW_BODY,
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
    },
)
def stripe_webhook(
    body: Annotated[bytes, Depends(raw_body)],
    session: DbSession,
    signature: Annotated[str | None, Header(alias="Stripe-Signature")] = None,
) -> WebhookReceived:
    """Receive a Stripe event: verified, stored once by id, applied by a worker; 503 while no secret is set."""
    secrets = [secret.get_secret_value() for secret in get_settings().stripe_webhook_secrets]
    try:
        event = verify_webhook(body, signature, secrets)
    except WebhookNotConfigured:
        raise Problem(
            503, "webhooks-not-configured", "Service unavailable", "No Stripe webhook secret is configured"
        ) from None
    except InvalidWebhook as e:
        raise Problem(400, "invalid-webhook", "Invalid webhook", str(e)) from None
    if webhooks.receive(session, event, utcnow()):
        defer_apply(event.id)
    return WebhookReceived()
