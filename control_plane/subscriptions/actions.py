"""What owners and billing members do, from the API and the billing page alike: the service's actions behind the
organization's visibility, the gateway's refusals as problems, and the jobs each change calls for (the billing run
at once, the reconciles of the workspaces whose state changed)."""

from __future__ import annotations

import uuid

import stripe
from sqlalchemy.orm import Session

from billing.gateway import GatewayError, InvalidPaymentMethod, PaymentMethodDeclined
from control_plane.core.authz import Principal
from control_plane.core.clock import utcnow
from control_plane.core.problems import InvalidInput, Problem
from control_plane.core.settings import Settings
from control_plane.organizations import service as organizations
from control_plane.reconciler.queue import Cause, defer_reconcile
from control_plane.subscriptions import repository, service, tasks
from control_plane.subscriptions.gateway import billing_enabled, payment_gateway
from control_plane.subscriptions.models import Subscription


class BillingNotEnabled(Problem):
    """The organization has no self-serve subscription (an Enterprise customer, or billing is off)."""

    def __init__(self) -> None:
        super().__init__(404, "billing-not-enabled", "Not found", "The organization has no self-serve billing")


class CardDeclined(Problem):
    """The card's issuer refused it."""

    def __init__(self, message: str) -> None:
        super().__init__(402, "card-declined", "Card declined", message)


class GatewayUnavailable(Problem):
    """The payment gateway did not answer as expected (nothing was changed here)."""

    def __init__(self) -> None:
        super().__init__(503, "payment-gateway-unavailable", "Service unavailable", "Try again in a minute")


def subscription(session: Session, principal: Principal, organization_id: uuid.UUID) -> Subscription:
    """The organization's subscription, when the caller may see the organization (404 otherwise, and for an
    organization without one)."""
    organizations.visible(session, principal, organization_id)
    sub = repository.get(session, organization_id)
    if sub is None:
        raise BillingNotEnabled()
    return sub


def add_card(
    session: Session, settings: Settings, principal: Principal, organization_id: uuid.UUID, payment_method_id: str
) -> None:
    """Make the payment method the organization's card (committed), then ask for the billing run at once: it
    reactivates a lapsed plan and charges what is open."""
    subscription(session, principal, organization_id)
    try:
        service.add_card(session, settings, organization_id, payment_method_id, principal.actor, utcnow())
    except PaymentMethodDeclined as declined:
        raise CardDeclined(str(declined)) from declined
    except InvalidPaymentMethod as refused:
        raise InvalidInput("payment_method_id", "is not a card this organization can use") from refused
    except (GatewayError, stripe.StripeError) as failed:
        raise GatewayUnavailable() from failed
    tasks.defer_billing(organization_id)


def cancel(session: Session, principal: Principal, organization_id: uuid.UUID) -> None:
    """Cancel at the period's end (committed); an unpaid plan ends at once and its workspaces are reconciled."""
    subscription(session, principal, organization_id)
    _follow_up(organization_id, service.cancel(session, organization_id, principal.actor, utcnow()))


def resume(session: Session, principal: Principal, organization_id: uuid.UUID) -> None:
    """Withdraw a cancellation, or resubscribe a cancelled plan (committed); its workspaces are reconciled."""
    subscription(session, principal, organization_id)
    _follow_up(organization_id, service.resume(session, organization_id, principal.actor, utcnow()))


def _follow_up(organization_id: uuid.UUID, changed_workspaces: list[uuid.UUID]) -> None:
    for workspace_id in changed_workspaces:
        defer_reconcile(workspace_id, Cause.billing)
    tasks.defer_billing(organization_id)


def card_setup_secret(settings: Settings, organization_id: uuid.UUID, attempt: uuid.UUID) -> str:
    """The client secret with which Stripe.js saves the card element's card for off-session charges; the resulting
    payment method then comes back through :func:`add_card`. ``attempt`` names one card entry, so that its retries
    reuse one SetupIntent."""
    if not billing_enabled(settings):
        raise BillingNotEnabled()
    try:
        return payment_gateway(settings).create_card_setup(str(organization_id), str(attempt))
    except (GatewayError, stripe.StripeError) as failed:
        raise GatewayUnavailable() from failed
