"""SQL of self-serve billing."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from billing.engine.seats import SeatSnapshot as EngineSnapshot
from control_plane.accounts.models import Account, Membership
from control_plane.core.authz import Role
from control_plane.subscriptions.models import BillingNotice, Invoice, InvoiceState, SeatSnapshot, Subscription
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Tier, Workspace


def get(session: Session, organization_id: uuid.UUID, *, for_update: bool = False) -> Subscription | None:
    """The organization's subscription (row-locked with ``for_update``)."""
    query = select(Subscription).where(Subscription.organization_id == organization_id)
    return session.scalars(query.with_for_update() if for_update else query).one_or_none()


def due(session: Session, now: datetime, limit: int) -> list[uuid.UUID]:
    """Organizations whose billing run is due, earliest first."""
    query = (
        select(Subscription.organization_id)
        .where(Subscription.next_run_at <= now)
        .order_by(Subscription.next_run_at)
        .limit(limit)
    )
    return list(session.scalars(query))


def billing_contacts(session: Session, organization_id: uuid.UUID) -> list[str]:
    """Where billing mail goes: the organization's owners and billing members."""
    query = (
        select(Account.email)
        .join(Membership, Membership.account_id == Account.id)
        .where(Membership.organization_id == organization_id, Membership.role.in_([Role.owner, Role.billing]))
        .order_by(Membership.role, Account.email)
    )
    return list(dict.fromkeys(session.scalars(query)))


def professional_workspaces(
    session: Session, organization_id: uuid.UUID, *, for_update: bool = False
) -> list[Workspace]:
    """The organization's Professional workspaces that are not deleted."""
    query = select(Workspace).where(
        Workspace.organization_id == organization_id,
        Workspace.tier == Tier.professional,
        Workspace.lifecycle_state != Lifecycle.deleted,
    )
    return list(session.scalars(query.with_for_update() if for_update else query))


def snapshots(session: Session, organization_id: uuid.UUID, until: datetime) -> dict[uuid.UUID, list[EngineSnapshot]]:
    """Each Professional workspace's seat snapshots taken before ``until`` (Enterprise seats are a contract's)."""
    query = (
        select(SeatSnapshot.workspace_id, SeatSnapshot.taken_at, SeatSnapshot.seats)
        .join(Workspace, Workspace.id == SeatSnapshot.workspace_id)
        .where(
            SeatSnapshot.organization_id == organization_id,
            SeatSnapshot.taken_at < until,
            Workspace.tier == Tier.professional,
        )
    )
    found: dict[uuid.UUID, list[EngineSnapshot]] = {}
    for workspace_id, taken_at, seats in session.execute(query):
        found.setdefault(workspace_id, []).append(EngineSnapshot(taken_at, seats))
    return found


def invoice(session: Session, organization_id: uuid.UUID, period: str, *, for_update: bool = False) -> Invoice | None:
    """The organization's invoice of ``period``."""
    query = select(Invoice).where(Invoice.organization_id == organization_id, Invoice.period == period)
    return session.scalars(query.with_for_update() if for_update else query).one_or_none()


def unpaid_invoices(session: Session, organization_id: uuid.UUID) -> list[Invoice]:
    """The organization's invoices not paid yet, oldest first."""
    query = (
        select(Invoice)
        .where(Invoice.organization_id == organization_id, Invoice.state != InvoiceState.paid)
        .order_by(Invoice.first_day)
    )
    return list(session.scalars(query))


def invoices(session: Session, organization_id: uuid.UUID, limit: int = 100) -> Sequence[Invoice]:
    """The organization's invoices, newest first."""
    query = (
        select(Invoice)
        .where(Invoice.organization_id == organization_id)
        .order_by(Invoice.first_day.desc())
        .limit(limit)
    )
    return session.scalars(query).all()


def claim_notice(session: Session, organization_id: uuid.UUID, key: str, now: datetime) -> bool:
    """Record notice ``key`` as sent; False when it already was (in the caller's transaction)."""
    statement = (
        insert(BillingNotice)
        .values(organization_id=organization_id, key=key, sent_at=now)
        .on_conflict_do_nothing()
        .returning(BillingNotice.key)
    )
    return session.execute(statement).first() is not None
