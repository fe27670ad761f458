"""Billing status changes, and the lifecycle states they request of the organization's workspaces.

Billing owns its status (:mod:`billing.engine.status`); the workspace lifecycle belongs to the workspaces domain.
A status change *requests* a lifecycle state, applied here through the lifecycle table
(:func:`control_plane.workspaces.service.transition`): a hibernated workspace keeps sleeping and resumes the
requested state when woken (one being restored in place, when its restore ends), except one that billing itself put
to sleep after a long suspension, which a reactivation wakes at once.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.orm import Session

from billing.engine.periods import PaidInterval
from billing.engine.status import BillingEvent, BillingStatus, Transition, apply_event
from control_plane.audit import service as audit
from control_plane.subscriptions import repository
from control_plane.subscriptions.models import Subscription
from control_plane.workspaces import service as workspaces
from control_plane.workspaces.lifecycle import TRANSITIONS, Lifecycle
from control_plane.workspaces.models import Workspace

ACTOR = "billing"
NOT_BILLING_MANAGED = frozenset({Lifecycle.pending_verification, Lifecycle.provisioning, Lifecycle.pending_deletion})


def paid_intervals(sub: Subscription) -> list[PaidInterval]:
    """The subscription's paid time as engine intervals."""
    return [
        PaidInterval(datetime.fromisoformat(str(start)), datetime.fromisoformat(end) if end else None)
        for start, end in sub.paid_intervals
    ]


def _open_interval(sub: Subscription, at: datetime) -> None:
    intervals = [list(pair) for pair in sub.paid_intervals]
    if intervals and intervals[-1][1] is None:
        return
    sub.paid_intervals = [*intervals, [at.isoformat(), None]]


def _close_interval(sub: Subscription, at: datetime) -> None:
    intervals = [list(pair) for pair in sub.paid_intervals]
    if intervals and intervals[-1][1] is None:
        intervals[-1][1] = max(at, datetime.fromisoformat(str(intervals[-1][0]))).isoformat()
        sub.paid_intervals = intervals


def apply(session: Session, sub: Subscription, event: BillingEvent, at: datetime) -> list[uuid.UUID]:
    """Apply ``event`` (effective ``at``) to the subscription and its workspaces, audited, not committed.

    Returns the workspaces whose lifecycle changed: the caller defers their reconcile after committing.
    """
    transition = apply_event(sub.status, event)
    before = sub.status
    sub.status = transition.status
    if transition.status is BillingStatus.active:
        _open_interval(sub, at)
    elif transition.status in (BillingStatus.unpaid, BillingStatus.canceled):
        _close_interval(sub, at)
    suspends = transition.requested_lifecycle.value == Lifecycle.suspended
    sub.suspended_at = (sub.suspended_at or at) if suspends else None
    sub.updated_at = at
    audit.record(
        session,
        actor=ACTOR,
        action=f"billing.{event.value}",
        target_type="organization",
        target_id=sub.organization_id,
        organization_id=sub.organization_id,
        before={"status": before.value},
        after={"status": sub.status.value},
    )
    return request_lifecycle(session, sub.organization_id, transition)


def request_lifecycle(session: Session, organization_id: uuid.UUID, transition: Transition) -> list[uuid.UUID]:
    """Move the organization's Professional workspaces to the state ``transition`` requests (not committed)."""
    target = Lifecycle(transition.requested_lifecycle.value)
    changed = []
    for ws in repository.professional_workspaces(session, organization_id, for_update=True):
        if _request(session, ws, target):
            changed.append(ws.id)
    return changed


def _request(session: Session, ws: Workspace, target: Lifecycle) -> bool:
    state = ws.lifecycle_state
    if state in NOT_BILLING_MANAGED or state == target:
        return False
    if state == Lifecycle.hibernated:
        if ws.resume_state == Lifecycle.suspended and target != Lifecycle.suspended:
            workspaces.transition(session, ws, target, ACTOR, action=f"workspace.{target.value}")
            return True
        if target in TRANSITIONS[Lifecycle.hibernated] and ws.resume_state != target:
            ws.resume_state = target  # it resumes the requested state when woken
        return False
    if state == Lifecycle.restoring:
        if target in TRANSITIONS[Lifecycle.restoring]:
            ws.resume_state = target  # the restore in place ends in the requested state
        return False
    workspaces.transition(session, ws, target, ACTOR)
    return True


def hibernate_suspended(session: Session, organization_id: uuid.UUID) -> list[uuid.UUID]:
    """Hibernate the organization's workspaces that billing has kept suspended (no process, data kept)."""
    changed = []
    for ws in repository.professional_workspaces(session, organization_id, for_update=True):
        if ws.lifecycle_state == Lifecycle.suspended:
            workspaces.transition(session, ws, Lifecycle.hibernated, ACTOR, action="workspace.hibernated_by_billing")
            changed.append(ws.id)
    return changed
