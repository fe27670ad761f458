"""Audit entry table."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import BigInteger, Identity, Index, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.core.db import Base
from control_plane.core.types import Timestamp


class AuditEntry(Base):
    """One mutation: actor, action, target, state before and after, request id."""

    __tablename__ = "audit_entries"
    __table_args__ = (
        # Listing (repository.page_query), newest first: each equality filter reads its index in page order.
        Index("ix_audit_entries_org_id", "organization_id", "id"),
        Index("ix_audit_entries_target_id", "target_id", "id"),
        Index("ix_audit_entries_target_type_id", "target_type", "id"),
        Index("ix_audit_entries_action_id", "action", "id"),
        Index("ix_audit_entries_actor_id", "actor", "id"),
        # A time range: the rows in it by this index, then sorted (or the id order when the range is recent).
        Index("ix_audit_entries_occurred_at", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    occurred_at: Mapped[Timestamp]
    actor: Mapped[str] = mapped_column(String(200))
    organization_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    action: Mapped[str] = mapped_column(String(100))
    target_type: Mapped[str] = mapped_column(String(50))
    target_id: Mapped[str] = mapped_column(String(100))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
