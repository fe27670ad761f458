"""Sales request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from control_plane.contracts.schemas import ContractCreate, ContractDetail
from control_plane.workspaces.schemas import WorkspaceOut

REGION = r"^[a-z]{2}(-[a-z]+)+-[0-9]$"


class CustomerWorkspace(BaseModel):
    """The customer's Enterprise workspace: its own silo in ``region`` (the default region when absent)."""

    model_config = ConfigDict(extra="forbid")

    slug: str = Field(min_length=1, max_length=100)
    display_name: str | None = Field(default=None, min_length=1, max_length=200)
    region: str | None = Field(default=None, max_length=50, pattern=REGION)


class CustomerCreate(BaseModel):
    """A new Enterprise customer: the organization, its owner, its contract and its workspace."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    owner_email: EmailStr = Field(max_length=320)
    contract: ContractCreate
    workspace: CustomerWorkspace


class CustomerOut(BaseModel):
    """A customer as sales see it: the owner, the contract (seats used against purchased, invoices, licence
    dates) and the workspaces with their provisioning conditions."""

    organization_id: uuid.UUID
    name: str
    created_at: datetime
    owner_email: str | None
    owner_has_signed_up: bool = Field(description="Whether the owner has set their password (accepted the invitation).")
    contract: ContractDetail | None
    workspaces: list[WorkspaceOut]
