"""API token table."""

from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.core.authz import Role, role_enum
from control_plane.core.db import Base
from control_plane.core.types import OptionalTimestamp, Timestamp, UUIDPk


class ApiToken(Base):
    """A bearer token acting for an account with one role (org roles are bound to one organization)."""

    __tablename__ = "api_tokens"

    id: Mapped[UUIDPk]
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    organization_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), nullable=True
    )
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[Role] = mapped_column(role_enum())
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    display_prefix: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[OptionalTimestamp]
    revoked_at: Mapped[OptionalTimestamp]
    last_used_at: Mapped[OptionalTimestamp]
    created_at: Mapped[Timestamp]
