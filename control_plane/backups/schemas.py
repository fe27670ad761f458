"""Backup and restore request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from control_plane.backups.models import (
    BackupKind,
    BackupState,
    RestoreMode,
    RestoreState,
    WorkspaceBackup,
    WorkspaceRestore,
)


class PartOut(BaseModel):
    """One part of a backup (where it is kept is not shown)."""

    name: str
    size: int
    sha256: str | None
    count: int | None


class BackupOut(BaseModel):
    """A backup: its state, and once completed its parts, size, checksum, counts and duration."""

    id: uuid.UUID
    workspace_id: uuid.UUID
    kind: BackupKind
    state: BackupState
    requested_by: str
    parts: list[PartOut]
    size_bytes: int | None
    sha256: str | None
    posts: int | None
    files: int | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    duration_seconds: float | None
    keep_until: datetime | None
    error: str | None


class BackupPage(BaseModel):
    """A workspace's backups, newest first."""

    items: list[BackupOut]


class CloneRestore(BaseModel):
    """Restore into a new workspace of the same organization and tier, at ``slug``."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["clone"]
    slug: str = Field(min_length=1, max_length=100)
    display_name: str | None = Field(default=None, max_length=200)


class InPlaceRestore(BaseModel):
    """Restore over the workspace itself (its data since the backup is lost): ``confirm`` repeats its slug."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["in_place"]
    confirm: str = Field(min_length=1, max_length=100)


RestoreRequest = Annotated[CloneRestore | InPlaceRestore, Field(discriminator="mode")]


class RestoreOut(BaseModel):
    """A restore: which backup into which workspace, and how far it is."""

    id: uuid.UUID
    backup_id: uuid.UUID
    source_workspace_id: uuid.UUID
    target_workspace_id: uuid.UUID
    mode: RestoreMode
    state: RestoreState
    requested_by: str
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    error: str | None


def backup_out(backup: WorkspaceBackup) -> BackupOut:
    """The API view of ``backup``."""
    return BackupOut(
        id=backup.id,
        workspace_id=backup.workspace_id,
        kind=backup.kind,
        state=backup.state,
        requested_by=backup.requested_by,
        parts=[
            PartOut(name=p["name"], size=p["size"], sha256=p.get("sha256"), count=p.get("count"))
            for p in backup.parts or []
        ],
        size_bytes=backup.size_bytes,
        sha256=backup.sha256,
        posts=backup.posts,
        files=backup.files,
        created_at=backup.created_at,
        started_at=backup.started_at,
        completed_at=backup.completed_at,
        duration_seconds=backup.duration_seconds,
        keep_until=backup.keep_until,
        error=backup.error,
    )


def restore_out(restore: WorkspaceRestore) -> RestoreOut:
    """The API view of ``restore``."""
    return RestoreOut(
        id=restore.id,
        backup_id=restore.backup_id,
        source_workspace_id=restore.source_workspace_id,
        target_workspace_id=restore.target_workspace_id,
        mode=restore.mode,
        state=restore.state,
        requested_by=restore.requested_by,
        created_at=restore.created_at,
        started_at=restore.started_at,
        completed_at=restore.completed_at,
        error=restore.error,
    )
