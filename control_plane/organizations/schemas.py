"""Organization request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, EmailStr, Field


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
