"""Audit log route under /api/v1."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from control_plane.audit.auth import AuditReader
from control_plane.audit.models import AuditEntry
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


@router.get("/audit", response_model=AuditPage)
def list_audit(
    session: DbSession,
    principal: AuditReader,
    target_id: str | None = None,
    before_id: Annotated[int | None, Query(ge=1, le=BIGINT_MAX)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AuditPage:
    """Audit entries the caller may see (an owner sees its organization's)."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit + 1)
    if not principal.is_staff:
        query = query.where(AuditEntry.organization_id == principal.organization_id)
    if target_id is not None:
        query = query.where(AuditEntry.target_id == target_id)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    rows = list(session.scalars(query))
    next_before = rows[limit - 1].id if len(rows) > limit else None
    return AuditPage(items=[AuditEntryOut.model_validate(r) for r in rows[:limit]], next_before_id=next_before)
