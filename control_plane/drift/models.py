"""Where each drift source left off (a Kubernetes watch's resource version, the re-verification's last tick)."""

from __future__ import annotations

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.core.db import Base
from control_plane.core.types import Timestamp


class DriftCursor(Base):
    """One source's position, written after each detection (any worker resumes from it)."""

    __tablename__ = "drift_cursors"

    source: Mapped[str] = mapped_column(String(300), primary_key=True)
    position: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[Timestamp]
