"""The billing status state machine, declared as data (like the workspace lifecycle).

Billing owns its status; the workspace lifecycle belongs to the control plane, which billing never imports.
Each status therefore *requests* a lifecycle state by its name (:data:`REQUESTED_LIFECYCLE`), and the control
plane applies it through its lifecycle table. :data:`EVENTS` names what moves the status; every event edge is
a declared transition (:data:`TRANSITIONS`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class BillingStatus(enum.StrEnum):
    """Where an organization's paid plan is (mirrors the usual payment-provider statuses)."""

    trialing = "trialing"
    active = "active"
    past_due = "past_due"
    unpaid = "unpaid"
    canceled = "canceled"


class BillingEvent(enum.StrEnum):
    """What happens to a paid plan."""

    trial_ended_with_card = "trial_ended_with_card"
    trial_ended_without_card = "trial_ended_without_card"
    payment_failed = "payment_failed"
    payment_succeeded = "payment_succeeded"
    retries_exhausted = "retries_exhausted"
    payment_method_added = "payment_method_added"
    cancellation_effective = "cancellation_effective"
    resubscribed = "resubscribed"


class LifecycleRequest(enum.StrEnum):
    """The workspace lifecycle states billing may request (values of the control plane's ``Lifecycle``)."""

    trialing = "trialing"
    active = "active"
    past_due = "past_due"
    suspended = "suspended"


B = BillingStatus
E = BillingEvent

TRANSITIONS: dict[BillingStatus, frozenset[BillingStatus]] = {
    B.trialing: frozenset({B.active, B.unpaid, B.canceled}),
    B.active: frozenset({B.past_due, B.canceled}),
    B.past_due: frozenset({B.active, B.unpaid, B.canceled}),
    B.unpaid: frozenset({B.active, B.canceled}),
    B.canceled: frozenset({B.active}),
}

EVENTS: dict[tuple[BillingStatus, BillingEvent], BillingStatus] = {
    (B.trialing, E.trial_ended_with_card): B.active,
    (B.trialing, E.trial_ended_without_card): B.unpaid,
    (B.trialing, E.cancellation_effective): B.canceled,
    (B.active, E.payment_failed): B.past_due,
    (B.active, E.cancellation_effective): B.canceled,
    (B.past_due, E.payment_succeeded): B.active,
    (B.past_due, E.retries_exhausted): B.unpaid,
    (B.past_due, E.cancellation_effective): B.canceled,
    (B.unpaid, E.payment_succeeded): B.active,
    (B.unpaid, E.payment_method_added): B.active,
    (B.unpaid, E.cancellation_effective): B.canceled,
    (B.canceled, E.resubscribed): B.active,
}

REQUESTED_LIFECYCLE: dict[BillingStatus, LifecycleRequest] = {
    B.trialing: LifecycleRequest.trialing,
    B.active: LifecycleRequest.active,
    B.past_due: LifecycleRequest.past_due,
    B.unpaid: LifecycleRequest.suspended,
    B.canceled: LifecycleRequest.suspended,
}


class IllegalBillingTransition(ValueError):
    """A transition or event the billing state machine does not allow."""

    def __init__(self, current: BillingStatus, requested: BillingStatus | BillingEvent) -> None:
        super().__init__(f"billing status {current.value} does not allow {requested.value}")
        self.current = current
        self.requested = requested
        self.allowed = sorted(s.value for s in TRANSITIONS[current])


@dataclass(frozen=True)
class Transition:
    """A billing status change and the lifecycle state it requests of the organization's workspaces."""

    previous: BillingStatus
    status: BillingStatus
    requested_lifecycle: LifecycleRequest


def check_transition(current: BillingStatus, target: BillingStatus) -> None:
    """Raise :class:`IllegalBillingTransition` unless ``current -> target`` is declared."""
    if target not in TRANSITIONS[current]:
        raise IllegalBillingTransition(current, target)


def apply_event(current: BillingStatus, event: BillingEvent) -> Transition:
    """The transition ``event`` causes from ``current`` (raises :class:`IllegalBillingTransition` if none)."""
    target = EVENTS.get((current, event))
    if target is None:
        raise IllegalBillingTransition(current, event)
    check_transition(current, target)
    return Transition(current, target, REQUESTED_LIFECYCLE[target])
