"""Release table: one workspace-server release, what each runtime runs for it and the schemas it runs on."""

from __future__ import annotations

import enum

from sqlalchemy import Enum, Integer, String, Text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.core.db import Base
from control_plane.core.types import Timestamp, UUIDPk


class ReleaseState(enum.StrEnum):
    """``candidate``: may be rolled out (to canaries first); ``stable``: proven, the default for new workspaces
    when it is the newest stable; ``revoked``: never rolled out or pinned again."""

    candidate = "candidate"
    stable = "stable"
    revoked = "revoked"


class Release(Base):
    """An immutable workspace-server release (only ``state`` and ``notes`` change)."""

    __tablename__ = "releases"

    id: Mapped[UUIDPk]
    version: Mapped[str] = mapped_column(String(50), unique=True)
    image: Mapped[str] = mapped_column(String(300))
    """The container image Kubernetes runs."""
    local_command: Mapped[list[str] | None] = mapped_column(ARRAY(Text), nullable=True)
    """The argv the local runtime runs (with the server's environment); None: the bundled server (this code)."""
    schema_min: Mapped[int] = mapped_column(Integer)
    """The schema revision the release migrates its database to when it starts: the oldest it runs on."""
    schema_max: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """The newest schema revision it runs on; None: any newer one (later releases only expand the schema)."""
    notes: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[ReleaseState] = mapped_column(
        Enum(ReleaseState, name="release_state", values_callable=lambda e: [m.value for m in e]),
        default=ReleaseState.candidate,
    )
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[Timestamp]
    updated_at: Mapped[Timestamp]

    def runs_on(self, schema: int | None) -> bool:
        """Whether this release can run on a database at ``schema`` (unknown: yes, it migrates what it needs)."""
        return schema is None or self.schema_max is None or schema <= self.schema_max
