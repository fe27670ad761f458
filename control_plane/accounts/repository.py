"""Membership queries."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from control_plane.accounts.models import Membership
from control_plane.core.authz import Role


def memberships(session: Session, account_id: uuid.UUID) -> list[Membership]:
    """The account's memberships, oldest first."""
    query = select(Membership).where(Membership.account_id == account_id).order_by(Membership.created_at)
    return list(session.scalars(query))


def membership_role(session: Session, account_id: uuid.UUID, organization_id: uuid.UUID) -> Role | None:
    """The account's role in the organization (None when it is not a member)."""
    query = select(Membership.role).where(
        Membership.account_id == account_id, Membership.organization_id == organization_id
    )
    return session.scalars(query).one_or_none()


def add_membership(session: Session, organization_id: uuid.UUID, account_id: uuid.UUID, role: Role) -> Membership:
    """Give the account ``role`` in the organization (not committed)."""
    membership = Membership(organization_id=organization_id, account_id=account_id, role=role)
    session.add(membership)
    session.flush()
    return membership
