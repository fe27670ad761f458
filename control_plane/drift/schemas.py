"""Bodies of the drift domain's routes."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Problem = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class HealthReport(BaseModel):
    """What a workspace server found wrong with its own dependencies (empty: nothing)."""

    model_config = ConfigDict(extra="forbid")

    problems: list[Problem] = Field(default_factory=list, max_length=10)
