"""Workspace export response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel

from control_plane.exports.models import ExportState, WorkspaceExport


class ExportOut(BaseModel):
    """A workspace export: its state and progress, and once completed a signed download link (a fresh one, valid
    for ``CANOPY_EXPORT_LINK_SECONDS``, on every read)."""

    id: uuid.UUID
    workspace_id: uuid.UUID
    state: ExportState
    requested_by: str
    attempts: int
    bytes_written: int
    posts_exported: int
    size_bytes: int | None
    sha256: str | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    progress_at: datetime | None
    completed_at: datetime | None
    download_url: str | None
    download_expires_at: datetime | None


class ExportPage(BaseModel):
    """A workspace's exports, newest first."""

    items: list[ExportOut]


def export_out(export: WorkspaceExport, link: tuple[str, datetime] | None) -> ExportOut:
    """The API view of ``export``, with its download ``link`` (URL and expiry) if it has one."""
    return ExportOut(
        id=export.id,
        workspace_id=export.workspace_id,
        state=export.state,
        requested_by=export.requested_by,
        attempts=export.attempts,
        bytes_written=export.bytes_written,
        posts_exported=export.posts_exported,
        size_bytes=export.size_bytes,
        sha256=export.sha256,
        error=export.error,
        created_at=export.created_at,
        started_at=export.started_at,
        progress_at=export.progress_at,
        completed_at=export.completed_at,
        download_url=link[0] if link else None,
        download_expires_at=link[1] if link else None,
    )
