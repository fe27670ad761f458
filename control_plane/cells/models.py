"""Cell table: the shared endpoints of one cell (from its Pulumi stack outputs), limits and state."""

from __future__ import annotations

import enum

from sqlalchemy import Enum, Integer, String, Text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.core.db import Base
from control_plane.core.types import Timestamp, UUIDPk


class CellState(enum.StrEnum):
    """``active`` cells take new workspaces; ``draining`` ones keep theirs and take no more."""

    active = "active"
    draining = "draining"


class Cell(Base):
    """One registered cell; never a password (only the ARN of the database admin secret)."""

    __tablename__ = "cells"

    id: Mapped[UUIDPk]
    name: Mapped[str] = mapped_column(String(20), unique=True)
    region: Mapped[str] = mapped_column(String(50), index=True)
    cluster_name: Mapped[str] = mapped_column(String(100))
    cluster_endpoint: Mapped[str] = mapped_column(String(300))
    cluster_ca: Mapped[str] = mapped_column(Text)
    postgres_host: Mapped[str] = mapped_column(String(253))
    postgres_port: Mapped[int] = mapped_column(Integer)
    postgres_admin_secret_arn: Mapped[str] = mapped_column(String(300))
    bucket_name: Mapped[str] = mapped_column(String(63))
    kms_key_arn: Mapped[str] = mapped_column(String(300))
    zone_id: Mapped[str] = mapped_column(String(32))
    domain: Mapped[str] = mapped_column(String(253))
    control_plane_role_arn: Mapped[str] = mapped_column(String(300))
    oidc_provider_arn: Mapped[str] = mapped_column(String(300), server_default="")  # '' = registered before 0004
    private_subnet_ids: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    max_workspaces: Mapped[int] = mapped_column(Integer)
    max_databases: Mapped[int] = mapped_column(Integer)
    state: Mapped[CellState] = mapped_column(
        Enum(CellState, name="cell_state", values_callable=lambda e: [m.value for m in e]),
        default=CellState.active,
    )
    created_at: Mapped[Timestamp]

    @property
    def capacity(self) -> int:
        """How many pooled workspaces fit: each one is a workspace and a database."""
        return min(self.max_workspaces, self.max_databases)
