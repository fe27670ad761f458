"""Workspace credential table: one random secret per workspace and purpose, encrypted (never stored in clear)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.core.db import Base
from control_plane.core.types import Timestamp


class Purpose(enum.StrEnum):
    """What a workspace credential opens."""

    database = "database"  # the password of the workspace's database login role
    control = "control"  # the bearer token of the workspace server's control endpoints


class WorkspaceCredential(Base):
    """A workspace's secret for one purpose: Fernet ciphertext and the id of the key that made it."""

    __tablename__ = "workspace_credentials"

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(20), primary_key=True)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    key_id: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[Timestamp]
    rotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
