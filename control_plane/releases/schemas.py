"""Release request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from control_plane.releases.models import ReleaseState

VERSION_PATTERN = r"^[0-9]+\.[0-9]+\.[0-9]+(?:-[0-9A-Za-z.-]{1,30})?$"
Version = Annotated[str, StringConstraints(pattern=VERSION_PATTERN, max_length=50)]
Image = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._/:@-]{0,299}$", max_length=300)]
Argument = Annotated[str, StringConstraints(min_length=1, max_length=1000)]


class ReleasePublish(BaseModel):
    """A new release. ``local_command`` is the argv the local runtime runs (omitted: the bundled server)."""

    model_config = ConfigDict(extra="forbid")

    version: Version
    image: Image
    local_command: list[Argument] | None = Field(default=None, min_length=1, max_length=50)
    schema_min: int = Field(ge=0, le=1_000_000)
    schema_max: int | None = Field(default=None, ge=0, le=1_000_000)
    notes: str = Field(default="", max_length=10_000)

    @model_validator(mode="after")
    def _range(self) -> ReleasePublish:
        if self.schema_max is not None and self.schema_max < self.schema_min:
            raise ValueError("schema_max must not be below schema_min")
        return self


class ReleaseChange(BaseModel):
    """``PATCH`` body: promote a candidate to stable, or revoke a release; notes may be amended."""

    model_config = ConfigDict(extra="forbid")

    state: ReleaseState | None = None
    notes: str | None = Field(default=None, max_length=10_000)


class ReleaseOut(BaseModel):
    """A release as the API shows it, with how many workspaces want it and run it."""

    id: uuid.UUID
    version: str
    image: str
    local_command: list[str] | None
    schema_min: int
    schema_max: int | None
    notes: str
    state: ReleaseState
    created_by: str
    created_at: datetime
    desired: int
    observed: int


class FleetCount(BaseModel):
    """How many live workspaces share a desired and an observed release, tier, cell and state."""

    desired_release: str
    observed_release: str | None
    tier: str
    cell: str | None
    lifecycle_state: str
    count: int


class ReleasePin(BaseModel):
    """Pin a workspace to a release (rollouts leave it alone) for a stated reason."""

    model_config = ConfigDict(extra="forbid")

    version: Version
    reason: str = Field(min_length=3, max_length=500)
