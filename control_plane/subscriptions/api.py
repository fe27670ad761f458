"""Self-serve billing routes under /api/v1/organizations/{organization_id}/billing (thin: parse, authorize, act)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from sqlalchemy.orm import Session

from control_plane.core.deps import DbSession
from control_plane.core.problems import problem_responses
from control_plane.core.settings import get_settings
from control_plane.subscriptions import actions, repository, service
from control_plane.subscriptions.auth import BillingManager, BillingReader
from control_plane.subscriptions.schemas import BillingOut, CardIn, InvoiceOut, billing_out, invoices_out

router = APIRouter(
    prefix="/api/v1/organizations/{organization_id}/billing",
    tags=["billing"],
    responses=problem_responses(401, 403, 404),
)


def _view(session: Session, organization_id: uuid.UUID) -> BillingOut:
    return billing_out(service.summary(session, organization_id), get_settings())


@router.get("", response_model=BillingOut)
def get_billing(organization_id: uuid.UUID, session: DbSession, principal: BillingReader) -> BillingOut:
    """The subscription: status, trial, cancellation, card on file, invoices, and what Stripe.js needs
    (owner, billing, support, admin; 404 for an organization without self-serve billing)."""
    actions.subscription(session, principal, organization_id)
    return _view(session, organization_id)


@router.get("/invoices", response_model=list[InvoiceOut])
def list_invoices(organization_id: uuid.UUID, session: DbSession, principal: BillingReader) -> list[InvoiceOut]:
    """The invoices with their lines, newest first."""
    actions.subscription(session, principal, organization_id)
    return invoices_out(list(repository.invoices(session, organization_id)))


@router.post("/card", response_model=BillingOut, responses=problem_responses(402, 409, 503))
def add_card(organization_id: uuid.UUID, body: CardIn, session: DbSession, principal: BillingManager) -> BillingOut:
    """Make a payment method from Stripe.js the card billed from now on (owner, billing, admin): open invoices
    are charged to it and suspended workspaces reactivate at once. A card its issuer refuses is a 402."""
    actions.add_card(session, get_settings(), principal, organization_id, body.payment_method_id)
    return _view(session, organization_id)


@router.post("/cancel", response_model=BillingOut, responses=problem_responses(409))
def cancel(organization_id: uuid.UUID, session: DbSession, principal: BillingManager) -> BillingOut:
    """Cancel at the end of the current period (a trial: at its end); the final invoice bills the seat-days
    used and the workspaces become read-only then (an unpaid plan ends at once)."""
    actions.cancel(session, principal, organization_id)
    return _view(session, organization_id)


@router.post("/resume", response_model=BillingOut, responses=problem_responses(409))
def resume(organization_id: uuid.UUID, session: DbSession, principal: BillingManager) -> BillingOut:
    """Withdraw a cancellation that has not taken effect, or resubscribe a cancelled plan (needs a card)."""
    actions.resume(session, principal, organization_id)
    return _view(session, organization_id)
