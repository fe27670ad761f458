"""Workspace request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Tier


class Condition(BaseModel):
    """One observed condition (Kubernetes style)."""

    type: str
    status: str
    reason: str | None = None
    message: str | None = None
    last_transition_at: datetime | None = None


class MaintenanceWindow(BaseModel):
    """A weekly window in which rollouts may restart an Enterprise workspace's server (its customer's choice)."""

    model_config = ConfigDict(extra="forbid")

    days: list[Annotated[int, Field(ge=0, le=6)]] = Field(
        min_length=1, max_length=7, description="Weekdays, 0 = Monday."
    )
    start: str = Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="Local start time, HH:MM.")
    duration_minutes: int = Field(ge=30, le=24 * 60)
    timezone: str = Field(default="UTC", max_length=60, description="An IANA time zone name.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("not a known IANA time zone") from None
        return value


class ReconcileStatus(BaseModel):
    """How the reconciler is doing with this workspace."""

    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    last_reconciled_at: datetime | None
    generation: int
    observed_generation: int


class WorkspaceOut(BaseModel):
    """A workspace as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    organization_id: uuid.UUID
    slug: str
    display_name: str
    tier: Tier
    region: str
    cell: str | None
    desired_release: str
    observed_release: str | None
    release_pin_reason: str | None = Field(description="Set while an operator pins the workspace's release.")
    schema_revision: int | None = Field(description="The schema revision its database is at (server-reported).")
    maintenance_window: MaintenanceWindow | None = Field(description="When rollouts may restart its server.")
    lifecycle_state: Lifecycle
    resume_state: Lifecycle | None = Field(
        description="While hibernated: the state waking returns to; while pending deletion: the state cancelling "
        "the deletion returns to."
    )
    purge_after: datetime | None = Field(
        description="While pending deletion: when the workspace and its data are purged (until then the deletion "
        "can be cancelled; a final backup is kept for 90 days)."
    )
    conditions: list[Condition]
    url: str | None
    reconcile: ReconcileStatus
    trial_ends_at: datetime | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None


class WorkspaceCreate(BaseModel):
    """Create a workspace in an organization (staff name the organization)."""

    slug: str = Field(min_length=1, max_length=100)
    display_name: str | None = Field(default=None, max_length=200)
    organization_id: uuid.UUID | None = None
    tier: Tier = Tier.professional
    region: str | None = Field(default=None, max_length=50)


class PurgeRequest(BaseModel):
    """Why a workspace pending deletion is purged before its date (kept in the audit log); nothing else (a
    misspelt field of a destructive request is refused, not ignored)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=1000, pattern=r"\S")


class WorkspacePage(BaseModel):
    """One page of workspaces and the cursor of the next."""

    items: list[WorkspaceOut]
    next_cursor: str | None


class SlugAvailability(BaseModel):
    """Whether an address can be taken."""

    slug: str
    available: bool
    reason: str | None


def workspace_out(ws: Any) -> WorkspaceOut:
    """Serialize a workspace row."""
    return WorkspaceOut(
        id=ws.id,
        organization_id=ws.organization_id,
        slug=ws.slug,
        display_name=ws.display_name,
        tier=ws.tier,
        region=ws.region,
        cell=ws.cell,
        desired_release=ws.desired_release,
        observed_release=ws.observed_release,
        release_pin_reason=ws.release_pin_reason,
        schema_revision=ws.schema_revision,
        maintenance_window=ws.maintenance_window,
        lifecycle_state=ws.lifecycle_state,
        resume_state=ws.resume_state,
        purge_after=ws.purge_after,
        conditions=[Condition.model_validate(c) for c in ws.conditions or []],
        url=ws.endpoint_url,
        reconcile=ReconcileStatus(
            attempts=ws.reconcile_attempts,
            last_error=ws.last_error,
            next_attempt_at=ws.next_attempt_at,
            last_reconciled_at=ws.last_reconciled_at,
            generation=ws.generation,
            observed_generation=ws.observed_generation,
        ),
        trial_ends_at=ws.trial_ends_at,
        created_at=ws.created_at,
        updated_at=ws.updated_at,
        deleted_at=ws.deleted_at,
    )
