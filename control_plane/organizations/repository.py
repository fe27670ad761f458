"""SQL for organizations and their invitations."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from control_plane.organizations.models import Invitation, Organization


def get(session: Session, organization_id: uuid.UUID, *, for_update: bool = False) -> Organization | None:
    """The organization; ``for_update`` locks its row (``FOR NO KEY UPDATE``: rows referencing it can still be made)."""
    query = select(Organization).where(Organization.id == organization_id)
    if for_update:
        query = query.with_for_update(key_share=True)
    return session.scalars(query).one_or_none()


def _open(organization_id: uuid.UUID) -> Select[Invitation]:
    """The organization's invitations neither accepted nor revoked, oldest first."""
    return (
        select(Invitation)
        .where(
            Invitation.organization_id == organization_id,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
        )
        .order_by(Invitation.created_at, Invitation.id)
    )


def open_invitations_to(session: Session, organization_id: uuid.UUID, email: str) -> list[Invitation]:
    """Open invitations of the organization to ``email`` (expired ones too), row-locked."""
    return list(session.scalars(_open(organization_id).where(Invitation.email == email).with_for_update()))


def pending(session: Session, organization_id: uuid.UUID, now: datetime) -> list[Invitation]:
    """Open invitations that can still be accepted, oldest first."""
    return list(session.scalars(_open(organization_id).where(Invitation.expires_at > now)))


def invitation(session: Session, organization_id: uuid.UUID, invitation_id: uuid.UUID) -> Invitation | None:
    """One of the organization's invitations."""
    query = select(Invitation).where(Invitation.id == invitation_id, Invitation.organization_id == organization_id)
    return session.scalars(query.with_for_update()).one_or_none()


def by_digest(session: Session, digest: str, *, for_update: bool = False) -> Invitation | None:
    """The invitation whose token has this digest (``for_update`` locks it: one acceptance at a time)."""
    query = select(Invitation).where(Invitation.token_digest == digest)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()
