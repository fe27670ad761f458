"""Audit log route under /api/v1."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from control_plane.audit import service as audit
from control_plane.audit.auth import AuditReader
from control_plane.audit.repository import AuditFilter
from control_plane.core.deps import DbSession
from control_plane.core.problems import problem_responses
from control_plane.core.types import BIGINT_MAX

router = APIRouter(prefix="/api/v1", tags=["audit"], responses=problem_responses(401, 403))


class AuditEntryOut(BaseModel):
    """One audit entry."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    occurred_at: datetime
    actor: str
    organization_id: uuid.UUID | None
    action: str
    target_type: str
    target_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None


class AuditPage(BaseModel):
    """Newest first; pass ``before_id`` = ``next_before_id`` for the next page."""

    items: list[AuditEntryOut]
    next_before_id: int | None


@router.get("/audit", response_model=AuditPage, responses=problem_responses(422))
def list_audit(
    session: DbSession,
    principal: AuditReader,
    organization_id: uuid.UUID | None = None,
    target_type: Annotated[str | None, Query(min_length=1, max_length=50)] = None,
    target_id: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    action: Annotated[str | None, Query(min_length=1, max_length=100, examples=["workspace.create"])] = None,
    actor: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    since: Annotated[datetime | None, Query(description="Entries at or after this time (UTC if no zone).")] = None,
    until: Annotated[datetime | None, Query(description="Entries before this time (UTC if no zone).")] = None,
    before_id: Annotated[int | None, Query(ge=1, le=BIGINT_MAX)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AuditPage:
    """Audit entries the caller may see (an owner sees its organization's) that match every filter given."""
    filters = AuditFilter(
        organization_id=organization_id,
        target_type=target_type,
        target_id=target_id,
        action=action,
        actor=actor,
        since=since,
        until=until,
    )
    rows, next_before = audit.list_page(session, principal, filters, before_id=before_id, limit=limit)
    return AuditPage(items=[AuditEntryOut.model_validate(r) for r in rows], next_before_id=next_before)
