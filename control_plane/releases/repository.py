"""SQL for releases and the fleet's releases."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from control_plane.releases.models import Release
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Workspace


def by_version(session: Session, version: str, *, for_update: bool = False) -> Release | None:
    """A release by version."""
    query = select(Release).where(Release.version == version)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def version_of_image(session: Session, image: str) -> str | None:
    """The newest release whose container image is ``image``."""
    query = select(Release.version).where(Release.image == image).order_by(Release.created_at.desc()).limit(1)
    return session.scalars(query).first()


def all_releases(session: Session) -> list[Release]:
    """Every release, newest first."""
    return list(session.scalars(select(Release).order_by(Release.created_at.desc(), Release.version.desc())))


LIVE = Workspace.lifecycle_state != Lifecycle.deleted


def counts_by(session: Session, column: InstrumentedAttribute[Any]) -> dict[str, int]:
    """Live workspaces per value of a release column (desired or observed)."""
    query = select(column, func.count()).where(LIVE).group_by(column)
    return {str(value): int(count) for value, count in session.execute(query) if value is not None}


def fleet(session: Session) -> list[tuple[str, str | None, str, str | None, str, int]]:
    """Live workspaces counted by desired release, observed release, tier, cell and lifecycle state."""
    keys = (
        Workspace.desired_release,
        Workspace.observed_release,
        Workspace.tier,
        Workspace.cell,
        Workspace.lifecycle_state,
    )
    query = select(*keys, func.count()).where(LIVE).group_by(*keys).order_by(*keys)
    return [(d, o, t.value, c, s.value, int(n)) for d, o, t, c, s, n in session.execute(query)]
