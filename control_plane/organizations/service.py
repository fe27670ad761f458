"""Organization actions."""

from __future__ import annotations

import secrets
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from control_plane.accounts import repository as accounts_repo
from control_plane.accounts.models import Account
from control_plane.audit import service as audit
from control_plane.core.authz import Principal, Role
from control_plane.core.problems import NotFound
from control_plane.core.security import hash_password
from control_plane.organizations.models import Organization


def add(session: Session, name: str, owner: Account, actor: str) -> Organization:
    """Create an organization owned by ``owner`` (not committed)."""
    org = Organization(name=name)
    session.add(org)
    session.flush()
    accounts_repo.add_membership(session, org.id, owner.id, Role.owner)
    audit.record(
        session,
        actor=actor,
        action="organization.create",
        target_type="organization",
        target_id=org.id,
        organization_id=org.id,
        after={"name": name, "owner": owner.email},
    )
    return org


def create_for_owner_email(session: Session, principal: Principal, name: str, owner_email: str) -> Organization:
    """Sales flow: an organization whose owner account is made (unverified) if it does not exist."""
    email = owner_email.strip().lower()
    owner = session.scalars(select(Account).where(Account.email == email)).one_or_none()
    if owner is None:
        owner = Account(email=email, password_hash=hash_password(secrets.token_urlsafe(32)))
        session.add(owner)
        session.flush()
    return add(session, name, owner, principal.actor)


def visible(session: Session, principal: Principal, organization_id: uuid.UUID) -> Organization:
    """The organization if the caller may see it (404 otherwise)."""
    org = session.get(Organization, organization_id)
    if org is None or not principal.can_see(org.id):
        raise NotFound("Organization")
    return org


def list_visible(session: Session, principal: Principal, limit: int = 100) -> list[Organization]:
    """Organizations the caller may see."""
    query = select(Organization).order_by(Organization.created_at, Organization.id).limit(limit)
    if not principal.is_staff:
        query = query.where(Organization.id == principal.organization_id)
    return list(session.scalars(query))
