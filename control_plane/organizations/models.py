"""Organization and invitation tables."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.core.authz import Role, role_enum
from control_plane.core.db import Base
from control_plane.core.types import OptionalTimestamp, Timestamp, UUIDPk


class Organization(Base):
    """A customer."""

    __tablename__ = "organizations"

    id: Mapped[UUIDPk]
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[Timestamp]


class Invitation(Base):
    """An invitation to join an organization in an organization role; only the token's digest is kept.

    It is *open* until accepted or revoked (at most one open invitation per organization and email),
    and usable while open and not expired.
    """

    __tablename__ = "organization_invitations"
    __table_args__ = (
        CheckConstraint("role IN ('owner', 'billing')", name="organization_role"),
        Index(
            "uq_organization_invitations_open_email",
            "organization_id",
            "email",
            unique=True,
            postgresql_where=text("accepted_at IS NULL AND revoked_at IS NULL"),
        ),
    )

    id: Mapped[UUIDPk]
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[Role] = mapped_column(role_enum())
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[OptionalTimestamp]
    revoked_at: Mapped[OptionalTimestamp]
    created_at: Mapped[Timestamp]
