"""What people and the reconciler ask of self-serve billing: start the trial, add a card, cancel or resume,
and read the subscription, its invoices and the plan each workspace server is told."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from billing.engine.periods import midnight, period_of
from billing.engine.status import REQUESTED_LIFECYCLE, BillingEvent, BillingStatus
from billing.engine.trial import notice_schedule, trial_end
from billing.gateway import Card
from control_plane.audit import service as audit
from control_plane.contracts import service as contracts
from control_plane.core.problems import Conflict, NotFound
from control_plane.core.settings import Settings
from control_plane.organizations.models import Organization
from control_plane.subscriptions import notices, repository, transitions
from control_plane.subscriptions.gateway import billing_enabled, payment_gateway, trial_policy
from control_plane.subscriptions.models import Invoice, Subscription
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Tier, Workspace

B = BillingStatus
PLAN_STATES = frozenset({Lifecycle.trialing, Lifecycle.active, Lifecycle.past_due, Lifecycle.suspended})


def start_trial(session: Session, settings: Settings, organization_id: uuid.UUID, now: datetime) -> Subscription | None:
    """The organization's subscription, its 14-day trial starting ``now`` if it has none (not committed);
    ``None`` where billing is off."""
    if not billing_enabled(settings):
        return None
    ends = trial_end(now, trial_policy(settings))
    first_due = min([ends, *(at for _, at in notice_schedule(now, trial_policy(settings)))])
    session.execute(
        insert(Subscription)
        .values(
            organization_id=organization_id,
            status=B.trialing,
            trial_started_at=now,
            trial_ends_at=ends,
            paid_intervals=[],
            next_run_at=first_due,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing()
    )
    return repository.get(session, organization_id)


def ready_state(session: Session, ws: Workspace) -> Lifecycle:
    """The state a workspace enters when provisioned: Enterprise is active; Professional follows its
    organization's billing status (a trial by default)."""
    if ws.tier is Tier.enterprise:
        return Lifecycle.active
    sub = repository.get(session, ws.organization_id)
    return Lifecycle.trialing if sub is None else Lifecycle(REQUESTED_LIFECYCLE[sub.status].value)


def trial_ends_at(session: Session, organization_id: uuid.UUID) -> datetime | None:
    """When the organization's trial ends (``None`` without a subscription)."""
    sub = repository.get(session, organization_id)
    return None if sub is None else sub.trial_ends_at


def workspace_plan(session: Session, settings: Settings, ws: Workspace) -> dict[str, object]:
    """What the workspace server is told of its plan (``PUT /api/v4/canopy/plan``); an Enterprise workspace of an
    organization with a contract also gets the contract's ``licence``."""
    state = ws.lifecycle_state if ws.lifecycle_state in PLAN_STATES else ready_state(session, ws)
    sub = repository.get(session, ws.organization_id) if ws.tier is Tier.professional else None
    trial_end_at = sub.trial_ends_at if sub is not None and sub.status is B.trialing else None
    delinquent = _delinquent_since(session, sub) if sub is not None else None
    plan: dict[str, object] = {
        "state": state.value if state in PLAN_STATES else Lifecycle.active.value,
        "trial_end_at": _millis(trial_end_at),
        "delinquent_since": _millis(delinquent),
        "billing_url": notices.billing_page_url(settings, ws.organization_id) if sub is not None else "",
    }
    licence = contracts.licence_terms(session, settings, ws.organization_id) if ws.tier is Tier.enterprise else None
    if licence is not None:  # only then: servers that predate licences keep accepting the plan
        plan["licence"] = licence
    return plan


def _delinquent_since(session: Session, sub: Subscription) -> datetime | None:
    if sub.status is B.past_due:
        failures = [i.first_failure_at for i in repository.unpaid_invoices(session, sub.organization_id)]
        return min((at for at in failures if at is not None), default=None)
    return sub.suspended_at if sub.status is B.unpaid else None


def _millis(at: datetime | None) -> int:
    return 0 if at is None else int(at.timestamp() * 1000)


def _subscription(session: Session, organization_id: uuid.UUID, *, for_update: bool = False) -> Subscription:
    sub = repository.get(session, organization_id, for_update=for_update)
    if sub is None:
        raise NotFound("subscription")
    return sub


def add_card(
    session: Session, settings: Settings, organization_id: uuid.UUID, payment_method_id: str, actor: str, now: datetime
) -> Subscription:
    """Make ``payment_method_id`` (from Stripe.js) the organization's card, committed; open invoices are charged to
    it and a lapsed plan reactivates on the billing run the caller defers (a cancelled plan keeps the card for
    its resumption; raises
    :class:`billing.gateway.PaymentMethodDeclined` for a card the issuer refuses)."""
    sub = _subscription(session, organization_id)
    customer_id = sub.customer_id or _ensure_customer(session, settings, organization_id)
    gateway = payment_gateway(settings)
    customer = gateway.set_default_payment_method(customer_id, payment_method_id)
    card = gateway.describe_card(customer.default_payment_method or payment_method_id)  # the id Stripe keeps
    sub = _subscription(session, organization_id, for_update=True)
    _record_card(sub, customer_id, card, now)
    audit.record(
        session,
        actor=actor,
        action="billing.card_added",
        target_type="organization",
        target_id=organization_id,
        organization_id=organization_id,
        after={"card_brand": card.brand, "card_last4": card.last4},
    )
    session.commit()
    return sub


def _ensure_customer(session: Session, settings: Settings, organization_id: uuid.UUID) -> str:
    organization = session.get(Organization, organization_id)
    contacts = repository.billing_contacts(session, organization_id)
    if organization is None or not contacts:
        raise NotFound("organization")
    return payment_gateway(settings).ensure_customer(str(organization_id), contacts[0], organization.name).id


def _record_card(sub: Subscription, customer_id: str, card: Card, now: datetime) -> None:
    sub.customer_id = customer_id
    sub.payment_method_id = card.payment_method_id
    sub.card_brand, sub.card_last4 = card.brand[:30], card.last4
    sub.payment_method_added_at = now
    sub.next_run_at = now
    sub.updated_at = now


def cancel(session: Session, organization_id: uuid.UUID, actor: str, now: datetime) -> list[uuid.UUID]:
    """Cancel at the end of the current period (a trial: at its end; an unpaid plan: now); committed.

    Returns the workspaces whose lifecycle changed (an unpaid plan's end is immediate)."""
    sub = _subscription(session, organization_id, for_update=True)
    changed: list[uuid.UUID] = []
    if sub.status is B.canceled or sub.cancel_at is not None:
        raise Conflict("already-canceled", "The subscription is already cancelled")
    if sub.status is B.unpaid:
        sub.cancel_at = now
        changed = transitions.apply(session, sub, BillingEvent.cancellation_effective, now)
    else:
        sub.cancel_at = sub.trial_ends_at if sub.status is B.trialing else midnight(period_of(now.date()).end)
        sub.next_run_at = min(sub.next_run_at, sub.cancel_at)
    _audit(session, sub, actor, "billing.cancel_requested")
    session.commit()
    return changed


def resume(session: Session, organization_id: uuid.UUID, actor: str, now: datetime) -> list[uuid.UUID]:
    """Withdraw a cancellation not yet effective, or resubscribe a cancelled plan (needs a card); committed."""
    sub = _subscription(session, organization_id, for_update=True)
    changed: list[uuid.UUID] = []
    if sub.status is B.canceled:
        if sub.payment_method_id is None:
            raise Conflict("card-required", "Add a card before resubscribing")
        changed = transitions.apply(session, sub, BillingEvent.resubscribed, now)
    elif sub.cancel_at is None:
        raise Conflict("not-canceled", "The subscription is not cancelled")
    sub.cancel_at = None
    sub.next_run_at = now
    _audit(session, sub, actor, "billing.resumed")
    session.commit()
    return changed


def _audit(session: Session, sub: Subscription, actor: str, action: str) -> None:
    audit.record(
        session,
        actor=actor,
        action=action,
        target_type="organization",
        target_id=sub.organization_id,
        organization_id=sub.organization_id,
        after={"status": sub.status.value, "cancel_at": sub.cancel_at.isoformat() if sub.cancel_at else None},
    )


@dataclass(frozen=True)
class BillingSummary:
    """An organization's billing as its owners see it."""

    subscription: Subscription
    invoices: list[Invoice]


def summary(session: Session, organization_id: uuid.UUID) -> BillingSummary:
    """The subscription and its invoices, newest first (404 where the organization is not billed)."""
    sub = _subscription(session, organization_id)
    return BillingSummary(sub, list(repository.invoices(session, organization_id)))
