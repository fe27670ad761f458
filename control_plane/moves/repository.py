"""SQL for enterprise moves."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from control_plane.moves.models import OPEN_MOVE_STATES, EnterpriseMove, MoveState
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Tier, Workspace


def get(session: Session, move_id: uuid.UUID, *, for_update: bool = False) -> EnterpriseMove | None:
    """A move by id."""
    query = select(EnterpriseMove).where(EnterpriseMove.id == move_id)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def open_of_source(session: Session, workspace_id: uuid.UUID) -> EnterpriseMove | None:
    """The open move of the workspace, if any (at most one: a unique index says so)."""
    query = select(EnterpriseMove).where(
        EnterpriseMove.source_workspace_id == workspace_id, EnterpriseMove.state.in_(OPEN_MOVE_STATES)
    )
    return session.scalars(query).one_or_none()


def newest_of(session: Session, organization_id: uuid.UUID) -> EnterpriseMove | None:
    """The organization's newest move."""
    query = (
        select(EnterpriseMove)
        .where(EnterpriseMove.organization_id == organization_id)
        .order_by(EnterpriseMove.created_at.desc(), EnterpriseMove.id.desc())
        .limit(1)
    )
    return session.scalars(query).first()


def other_live_professional(session: Session, organization_id: uuid.UUID, workspace_id: uuid.UUID) -> int:
    """How many Professional workspaces of the organization, besides ``workspace_id``, are not being deleted."""
    query = select(func.count()).where(
        Workspace.organization_id == organization_id,
        Workspace.id != workspace_id,
        Workspace.tier == Tier.professional,
        Workspace.lifecycle_state.not_in([Lifecycle.pending_deletion, Lifecycle.deleted]),
    )
    return int(session.scalar(query) or 0)


def moving_at(session: Session, slug: str) -> bool:
    """Whether an open move's window has begun at the address ``slug`` (none has been cut over there yet)."""
    query = select(EnterpriseMove.id).where(
        EnterpriseMove.slug == slug, EnterpriseMove.state.in_(OPEN_MOVE_STATES - {MoveState.scheduled})
    )
    return session.scalars(query.limit(1)).first() is not None
