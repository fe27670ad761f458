"""Account and membership queries."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from control_plane.accounts.models import Account, Membership
from control_plane.core.authz import Role


def normalize_email(email: str) -> str:
    """Emails are compared case-insensitively."""
    return email.strip().lower()


def account_by_email(session: Session, email: str) -> Account | None:
    """The account with this email."""
    return session.scalars(select(Account).where(Account.email == normalize_email(email))).one_or_none()


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


def members_of(session: Session, organization_id: uuid.UUID) -> list[tuple[Membership, str]]:
    """The organization's memberships with each member's email, oldest first."""
    query = (
        select(Membership, Account.email)
        .join(Account, Account.id == Membership.account_id)
        .where(Membership.organization_id == organization_id)
        .order_by(Membership.created_at, Membership.id)
    )
    return [(membership, email) for membership, email in session.execute(query)]


def membership(session: Session, organization_id: uuid.UUID, account_id: uuid.UUID) -> Membership | None:
    """The account's membership in the organization."""
    query = select(Membership).where(Membership.organization_id == organization_id, Membership.account_id == account_id)
    return session.scalars(query).one_or_none()


def count_owners(session: Session, organization_id: uuid.UUID) -> int:
    """How many owners the organization has."""
    query = select(func.count()).where(Membership.organization_id == organization_id, Membership.role == Role.owner)
    return session.scalar(query) or 0


def first_owner(session: Session, organization_id: uuid.UUID) -> Account | None:
    """The organization's earliest owner."""
    query = (
        select(Account)
        .join(Membership, Membership.account_id == Account.id)
        .where(Membership.organization_id == organization_id, Membership.role == Role.owner)
        .order_by(Membership.created_at, Membership.id)
        .limit(1)
    )
    return session.scalars(query).first()


def owner_emails(session: Session, organization_id: uuid.UUID) -> list[str]:
    """The addresses of the organization's owners, in order."""
    query = (
        select(Account.email)
        .join(Membership, Membership.account_id == Account.id)
        .where(Membership.organization_id == organization_id, Membership.role == Role.owner)
        .order_by(Account.email)
    )
    return list(session.scalars(query))
