"""The payment gateway this deployment bills through (Stripe, or localstripe in tests), and billing's policies."""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache

import stripe

from billing.engine.dunning import DunningPolicy
from billing.engine.pricing import PROFESSIONAL
from billing.engine.trial import TrialPolicy
from billing.stripe_gateway import StripeApi, StripeGateway
from control_plane.core.settings import Settings


def billing_enabled(settings: Settings) -> bool:
    """Whether Professional organizations are billed: a payment gateway is configured (else trials never end)."""
    return settings.stripe_api_key is not None


def payment_gateway(settings: Settings) -> StripeGateway:
    """The gateway of ``settings`` (one per configuration and process)."""
    if settings.stripe_api_key is None:
        raise RuntimeError("no payment gateway is configured (CANOPY_STRIPE_API_KEY)")
    return _gateway(settings.stripe_api_key.get_secret_value(), settings.stripe_api_base, settings.stripe_dialect)


@lru_cache(maxsize=4)
def _gateway(api_key: str, api_base: str | None, dialect: str) -> StripeGateway:
    client = stripe.StripeClient(api_key, base_addresses={"api": api_base} if api_base else {}, max_network_retries=2)
    return StripeGateway(client, StripeApi(dialect))


@lru_cache(maxsize=4)
def _seat_price_id(api_key: str, api_base: str | None, dialect: str) -> str:
    return _gateway(api_key, api_base, dialect).ensure_seat_price(PROFESSIONAL)


def seat_price_id(settings: Settings) -> str:
    """The gateway's catalog entry of the Professional seat price (created on first use)."""
    if settings.stripe_api_key is None:
        raise RuntimeError("no payment gateway is configured (CANOPY_STRIPE_API_KEY)")
    return _seat_price_id(settings.stripe_api_key.get_secret_value(), settings.stripe_api_base, settings.stripe_dialect)


def trial_policy(settings: Settings) -> TrialPolicy:
    """The trial's length from configuration (the notices stay 7, 1 and 0 days before its last day)."""
    return TrialPolicy(length=timedelta(days=settings.trial_days))


def dunning_policy(settings: Settings) -> DunningPolicy:
    """The charge retries from configuration."""
    return DunningPolicy(tuple(timedelta(days=days) for days in settings.billing_dunning_retry_days))
