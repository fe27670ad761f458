"""Account, membership, web session and email verification tables."""

from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.core.authz import Role, role_enum
from control_plane.core.db import Base
from control_plane.core.types import OptionalTimestamp, Timestamp, UUIDPk


class Account(Base):
    """A person who signs in to Canopy."""

    __tablename__ = "accounts"

    id: Mapped[UUIDPk]
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    email_verified_at: Mapped[OptionalTimestamp]
    staff_role: Mapped[Role | None] = mapped_column(role_enum(), nullable=True)
    created_at: Mapped[Timestamp]


class Membership(Base):
    """An account's role in an organization."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("organization_id", "account_id"),)

    id: Mapped[UUIDPk]
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    role: Mapped[Role] = mapped_column(role_enum())
    created_at: Mapped[Timestamp]


class EmailVerification(Base):
    """A pending email confirmation; only the token's digest is kept."""

    __tablename__ = "email_verifications"

    id: Mapped[UUIDPk]
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[OptionalTimestamp]
    used_at: Mapped[OptionalTimestamp]
    created_at: Mapped[Timestamp]


class WebSession(Base):
    """A browser session of an account (cookie holds the token, the table its digest)."""

    __tablename__ = "web_sessions"

    id: Mapped[UUIDPk]
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[OptionalTimestamp]
    created_at: Mapped[Timestamp]
