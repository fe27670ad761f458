"""SQL for workspaces."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, select, tuple_
from sqlalchemy.orm import Session, aliased

from control_plane.core.db import plan_for_values
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


@dataclass(frozen=True)
class WorkspaceFilter:
    """What a workspace listing is narrowed to (``None``: any). The slug searches take lowercase slug characters
    only (the API checks them), so they need no ``LIKE`` escaping."""

    organization_id: uuid.UUID | None = None
    state: Lifecycle | None = None
    tier: Tier | None = None
    cell: str | None = None
    desired_release: str | None = None
    observed_release: str | None = None
    slug_prefix: str | None = None
    slug_contains: str | None = None


def page_query(filters: WorkspaceFilter, after: tuple[datetime, uuid.UUID] | None, limit: int) -> Select[Workspace]:
    """Workspaces ordered by (created_at, id), keyset-paginated after ``after``.

    Each equality filter has a ``(column, created_at, id)`` index, so the page is read in order from the most
    selective one and the scan stops after ``limit`` rows. A slug search finds its rows by the trigram index and
    sorts them: it is planned apart from the order and limit (``OFFSET 0``), since reading the page order and
    skipping the misses would read the whole table when the matches are few or all recent."""
    query = select(Workspace)
    equalities = {
        Workspace.organization_id: filters.organization_id,
        Workspace.lifecycle_state: filters.state,
        Workspace.tier: filters.tier,
        Workspace.cell: filters.cell,
        Workspace.desired_release: filters.desired_release,
        Workspace.observed_release: filters.observed_release,
    }
    for column, value in equalities.items():
        if value is not None:
            query = query.where(column == value)
    if after is not None:
        # A row comparison: an index bound on (created_at, id), so a deep page costs what the first does.
        query = query.where(tuple_(Workspace.created_at, Workspace.id) > tuple_(*after))
    if filters.slug_prefix is not None:
        query = query.where(Workspace.slug.like(f"{filters.slug_prefix}%"))
    if filters.slug_contains is not None:
        query = query.where(Workspace.slug.like(f"%{filters.slug_contains}%"))
    if filters.slug_prefix is not None or filters.slug_contains is not None:
        found = aliased(Workspace, query.offset(0).subquery("found"))
        return select(found).order_by(found.created_at, found.id).limit(limit)
    return query.order_by(Workspace.created_at, Workspace.id).limit(limit)


def page(
    session: Session, filters: WorkspaceFilter, *, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[Workspace]:
    """The rows of :func:`page_query`, planned for the values given."""
    plan_for_values(session)
    return list(session.scalars(page_query(filters, after, limit)))


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


def waiting_for_admin(session: Session, email: str) -> list[Workspace]:
    """Live workspaces whose initial admin is ``email`` and that have no password hash to hand over (locked)."""
    query = (
        select(Workspace)
        .where(
            Workspace.initial_admin_email == email,
            Workspace.initial_admin_password_hash.is_(None),
            Workspace.lifecycle_state != Lifecycle.deleted,
        )
        .order_by(Workspace.created_at, Workspace.id)
        .with_for_update()
    )
    return list(session.scalars(query))
