"""Organization table."""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.core.db import Base
from control_plane.core.types import Timestamp, UUIDPk


class Organization(Base):
    """A customer."""

    __tablename__ = "organizations"

    id: Mapped[UUIDPk]
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[Timestamp]
