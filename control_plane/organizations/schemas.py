"""Organization, member and invitation request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

OrgRole = Literal["billing", "owner"]


class OrganizationCreate(BaseModel):
    """Sales create a customer with its first owner."""

    name: str = Field(min_length=1, max_length=200)
    owner_email: EmailStr


class OrganizationOut(BaseModel):
    """An organization."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    created_at: datetime


class InvitationCreate(BaseModel):
    """Invite an email into the organization; the link goes to that address."""

    email: EmailStr = Field(max_length=320)
    role: OrgRole = Field(description="`billing` sees plans and invoices; `owner` may do everything.")


class InvitationOut(BaseModel):
    """An invitation (never its token, which only the mail carries)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    role: OrgRole
    expires_at: datetime
    created_at: datetime


class MemberOut(BaseModel):
    """An account's membership of the organization."""

    account_id: uuid.UUID
    email: str
    role: OrgRole
    created_at: datetime
