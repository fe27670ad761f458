"""Write audit entries in the same transaction as the mutation they describe."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC
from typing import Any

from sqlalchemy.orm import Session

from control_plane.audit import repository
from control_plane.audit.models import AuditEntry
from control_plane.core.authz import Principal
from control_plane.core.problems import InvalidInput
from control_plane.core.request_context import current_request_id


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    target_type: str,
    target_id: str | uuid.UUID,
    organization_id: uuid.UUID | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    """Add an audit entry to ``session`` (committed with the caller's transaction)."""
    entry = AuditEntry(
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        organization_id=organization_id,
        before=before,
        after=after,
        request_id=current_request_id(),
    )
    session.add(entry)
    return entry


def list_page(
    session: Session, principal: Principal, filters: repository.AuditFilter, *, before_id: int | None, limit: int
) -> tuple[list[AuditEntry], int | None]:
    """A page of the entries the caller may see (an owner: its organization's) that match ``filters``, newest
    first, and the ``before_id`` of the next page. Times without a zone are UTC."""
    if not principal.is_staff:
        if filters.organization_id not in (None, principal.organization_id):
            return [], None
        filters = replace(filters, organization_id=principal.organization_id)
    since, until = (t.replace(tzinfo=UTC) if t and t.tzinfo is None else t for t in (filters.since, filters.until))
    if since is not None and until is not None and since >= until:
        raise InvalidInput("until", "must be later than since")
    rows = repository.page(session, replace(filters, since=since, until=until), before_id=before_id, limit=limit + 1)
    return rows[:limit], rows[limit - 1].id if len(rows) > limit else None
