"""API token request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from control_plane.core.authz import Role


class TokenCreate(BaseModel):
    """Ask for a new token; ``role`` defaults to the caller's own."""

    name: str = Field(min_length=1, max_length=100)
    role: Role | None = None
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class PasswordTokenCreate(BaseModel):
    """Exchange an account's email and password for a token."""

    email: str = Field(max_length=320)
    password: str = Field(max_length=200)
    name: str = Field(default="cli", min_length=1, max_length=100)
    organization_id: uuid.UUID | None = None


class TokenOut(BaseModel):
    """A token as listed (never the secret)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    role: Role
    organization_id: uuid.UUID | None
    display_prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    """A new token: the only time its secret is shown."""

    token: str
