"""SQL for the audit log."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from control_plane.audit.models import AuditEntry
from control_plane.core.db import plan_for_values


@dataclass(frozen=True)
class AuditFilter:
    """What an audit listing is narrowed to (``None``: any); ``since`` is inclusive, ``until`` exclusive."""

    organization_id: uuid.UUID | None = None
    target_type: str | None = None
    target_id: str | None = None
    action: str | None = None
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def page_query(filters: AuditFilter, before_id: int | None, limit: int) -> Select[AuditEntry]:
    """Entries newest first (by id), keyset-paginated below ``before_id``.

    Each equality filter has an ``(column, id)`` index read backwards in page order, stopping after ``limit`` rows;
    a time range uses the ``occurred_at`` index."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    equalities = {
        AuditEntry.organization_id: filters.organization_id,
        AuditEntry.target_type: filters.target_type,
        AuditEntry.target_id: filters.target_id,
        AuditEntry.action: filters.action,
        AuditEntry.actor: filters.actor,
    }
    for column, value in equalities.items():
        if value is not None:
            query = query.where(column == value)
    if filters.since is not None:
        query = query.where(AuditEntry.occurred_at >= filters.since)
    if filters.until is not None:
        query = query.where(AuditEntry.occurred_at < filters.until)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    return query


def page(session: Session, filters: AuditFilter, *, before_id: int | None, limit: int) -> list[AuditEntry]:
    """The rows of :func:`page_query`, planned for the values given."""
    plan_for_values(session)
    return list(session.scalars(page_query(filters, before_id, limit)))
