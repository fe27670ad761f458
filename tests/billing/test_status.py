"""The billing status machine, and the lifecycle transitions it requests (checked against the lifecycle table)."""

from __future__ import annotations

import itertools

import pytest

from billing.engine.status import (
    EVENTS,
    REQUESTED_LIFECYCLE,
    TRANSITIONS,
    BillingEvent,
    BillingStatus,
    IllegalBillingTransition,
    LifecycleRequest,
    apply_event,
    check_transition,
)
from control_plane.workspaces.lifecycle import TRANSITIONS as LIFECYCLE_TRANSITIONS
from control_plane.workspaces.lifecycle import Lifecycle

B, E = BillingStatus, BillingEvent


def test_every_event_edge_is_a_declared_transition_and_every_transition_has_an_event() -> None:
    edges = {(source, target) for (source, _), target in EVENTS.items()}
    declared = {(source, target) for source, targets in TRANSITIONS.items() for target in targets}
    assert edges == declared


@pytest.mark.parametrize(("status", "event"), list(itertools.product(B, E)))
def test_every_status_and_event_pair_either_moves_or_is_refused(status: BillingStatus, event: BillingEvent) -> None:
    if (status, event) in EVENTS:
        transition = apply_event(status, event)
        assert transition.previous == status
        assert transition.status == EVENTS[(status, event)]
        assert transition.requested_lifecycle == REQUESTED_LIFECYCLE[transition.status]
    else:
        with pytest.raises(IllegalBillingTransition) as caught:
            apply_event(status, event)
        assert caught.value.allowed == sorted(s.value for s in TRANSITIONS[status])


def test_check_transition() -> None:
    check_transition(B.past_due, B.unpaid)
    with pytest.raises(IllegalBillingTransition, match="active does not allow unpaid"):
        check_transition(B.active, B.unpaid)


def test_the_journeys_of_the_issue() -> None:
    def run(events: list[BillingEvent]) -> list[str]:
        status, requested = B.trialing, []
        for event in events:
            transition = apply_event(status, event)
            status = transition.status
            requested.append(f"{status.value}->{transition.requested_lifecycle.value}")
        return requested

    assert run([E.trial_ended_without_card, E.payment_method_added]) == ["unpaid->suspended", "active->active"]
    assert run([E.trial_ended_with_card, E.payment_failed, E.retries_exhausted, E.payment_succeeded]) == [
        "active->active",
        "past_due->past_due",
        "unpaid->suspended",
        "active->active",
    ]
    assert run([E.trial_ended_with_card, E.cancellation_effective]) == ["active->active", "canceled->suspended"]


def test_requested_lifecycle_states_exist_in_the_lifecycle() -> None:
    assert {r.value for r in LifecycleRequest} <= {s.value for s in Lifecycle}
    assert set(REQUESTED_LIFECYCLE) == set(B)


def test_every_billing_transition_requests_a_legal_lifecycle_transition() -> None:
    """From the lifecycle state the previous status requested (or hibernated, which suspension leads to)."""
    for source, targets in TRANSITIONS.items():
        before = Lifecycle(REQUESTED_LIFECYCLE[source].value)
        starts = {before, Lifecycle.hibernated} if before is Lifecycle.suspended else {before}
        for target in targets:
            after = Lifecycle(REQUESTED_LIFECYCLE[target].value)
            for start in starts:
                assert (
                    after in LIFECYCLE_TRANSITIONS[start]
                    or after is start
                    or (start is Lifecycle.hibernated and after is Lifecycle.suspended)
                ), f"{source}->{target} requests {start}->{after}"
