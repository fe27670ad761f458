"""Cell request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from control_plane.cells.models import CellState


class CellRegister(BaseModel):
    """Exactly the fields of ``infra.conventions.CellOutputs`` (what ``pulumi stack output --json`` prints)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    region: str
    cluster_name: str
    cluster_endpoint: str
    cluster_ca: str
    postgres_host: str
    postgres_port: int
    postgres_admin_secret_arn: str
    bucket_name: str
    kms_key_arn: str
    zone_id: str
    domain: str
    control_plane_role_arn: str
    oidc_provider_arn: str
    private_subnet_ids: list[str]
    max_workspaces: int
    max_databases: int


class CellUsage(BaseModel):
    """Live pooled workspaces in the cell (each has one database) and how many more fit."""

    workspaces: int
    room: int


class CellOut(CellRegister):
    """A cell as the API shows it: its registered outputs plus state and usage."""

    id: uuid.UUID
    state: CellState
    usage: CellUsage
    created_at: datetime


class CellStateChange(BaseModel):
    """``PATCH`` body: drain a cell (no new workspaces) or make it active again."""

    model_config = ConfigDict(extra="forbid")

    state: CellState
