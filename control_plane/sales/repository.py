"""SQL for sales: which organizations are Enterprise customers."""

from __future__ import annotations

import uuid

from sqlalchemy import exists, or_, select
from sqlalchemy.orm import Session

from control_plane.contracts.models import Contract
from control_plane.organizations.models import Organization
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Tier, Workspace


def customers(session: Session, organization_id: uuid.UUID | None, limit: int) -> list[Organization]:
    """Organizations with a contract or an Enterprise workspace (only ``organization_id`` if given), newest first."""
    has_contract = exists().where(Contract.organization_id == Organization.id)
    has_silo = exists().where(Workspace.organization_id == Organization.id, Workspace.tier == Tier.enterprise)
    query = select(Organization).where(or_(has_contract, has_silo))
    if organization_id is not None:
        query = query.where(Organization.id == organization_id)
    return list(session.scalars(query.order_by(Organization.created_at.desc(), Organization.id).limit(limit)))


def live_workspaces(session: Session, organization_id: uuid.UUID) -> list[Workspace]:
    """The organization's workspaces not deleted, oldest first."""
    query = select(Workspace).where(
        Workspace.organization_id == organization_id, Workspace.lifecycle_state != Lifecycle.deleted
    )
    return list(session.scalars(query.order_by(Workspace.created_at, Workspace.id)))
