"""SQL for workspaces."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Tier, Workspace


def live_by_slug(session: Session, slug: str, *, for_update: bool = False) -> Workspace | None:
    """The workspace that holds ``slug`` (deleted ones release it)."""
    query = select(Workspace).where(Workspace.slug == slug, Workspace.lifecycle_state != Lifecycle.deleted)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def all_by_slug(session: Session, slug: str) -> list[Workspace]:
    """Every workspace that held ``slug``, deleted ones included, newest first."""
    query = select(Workspace).where(Workspace.slug == slug).order_by(Workspace.created_at.desc(), Workspace.id)
    return list(session.scalars(query))


def get(session: Session, workspace_id: uuid.UUID, *, for_update: bool = False) -> Workspace | None:
    """A workspace by id."""
    query = select(Workspace).where(Workspace.id == workspace_id)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def page(
    session: Session,
    *,
    organization_id: uuid.UUID | None,
    state: Lifecycle | None,
    tier: Tier | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[Workspace]:
    """Workspaces ordered by (created_at, id), keyset-paginated after ``after``."""
    query = select(Workspace).order_by(Workspace.created_at, Workspace.id).limit(limit)
    if organization_id is not None:
        query = query.where(Workspace.organization_id == organization_id)
    if state is not None:
        query = query.where(Workspace.lifecycle_state == state)
    if tier is not None:
        query = query.where(Workspace.tier == tier)
    if after is not None:
        created_at, last_id = after
        query = query.where(
            or_(
                Workspace.created_at > created_at,
                and_(Workspace.created_at == created_at, Workspace.id > last_id),
            )
        )
    return list(session.scalars(query))


def pending_verification_of(session: Session, organization_ids: list[uuid.UUID]) -> list[Workspace]:
    """Workspaces waiting for their owner's email confirmation."""
    query = select(Workspace).where(
        Workspace.organization_id.in_(organization_ids),
        Workspace.lifecycle_state == Lifecycle.pending_verification,
    )
    return list(session.scalars(query.with_for_update()))


def pending_deletion(session: Session, limit: int) -> list[Workspace]:
    """Workspaces pending deletion, the soonest purged first."""
    query = (
        select(Workspace)
        .where(Workspace.lifecycle_state == Lifecycle.pending_deletion)
        .order_by(Workspace.purge_after.asc().nulls_last(), Workspace.id)
        .limit(limit)
    )
    return list(session.scalars(query))
