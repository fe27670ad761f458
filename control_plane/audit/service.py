"""Write audit entries in the same transaction as the mutation they describe."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from control_plane.audit.models import AuditEntry
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
