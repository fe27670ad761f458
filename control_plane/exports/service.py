"""Workspace exports: request one, make its archive (a worker), read them, download through a signed link.

A worker pulls the archive from the workspace server (``GET /api/v4/canopy/export`` with the workspace's control
token: Mattermost's bulk-export format, see ``workspace_server/export.py``) and keeps it where
:mod:`archives` says, recording the bytes and posts received so far on the row about once a second. A worker that
dies mid-export leaves the row ``running``; procrastinate's stalled-job recovery runs the job again, which starts
the archive over.

Download links are ``/api/v1/exports/<id>/download?token=<expiry>.<signature>``: an HMAC-SHA256 of the export id
and the expiry under a key derived from ``CANOPY_SECRET_KEY``, so nothing is stored and every read of a completed
export hands out a fresh link. A forged or mistyped token is a 404, an expired one a 410.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from botocore.exceptions import BotoCoreError, ClientError
from sqlalchemy.orm import Session

from control_plane.audit import service as audit
from control_plane.core.authz import Principal
from control_plane.core.clock import utcnow
from control_plane.core.db import session_scope
from control_plane.core.problems import Conflict, NotFound, Problem
from control_plane.core.settings import get_settings
from control_plane.credentials.models import Purpose
from control_plane.credentials.service import reveal
from control_plane.exports import archives, repository
from control_plane.exports.models import OPEN_STATES, ExportState, WorkspaceExport
from control_plane.providers.base import ProviderError
from control_plane.providers.workspace_client import control_url
from control_plane.reconciler.status import short_error
from control_plane.workspaces import service as workspaces
from control_plane.workspaces.lifecycle import RUNNING_STATES, Lifecycle
from control_plane.workspaces.models import Workspace
from infra.conventions import short_id

logger = logging.getLogger(__name__)

EXPORTABLE_STATES = RUNNING_STATES - {Lifecycle.provisioning}
MAX_LIST = 100
PROGRESS_SECONDS = 1.0
WORKER_ACTOR = "worker"
LINK_ACTOR = "download link"
RETENTION_ACTOR = "retention"
RETENTION_BATCH = 100
_LINK_KEY_PURPOSE = b"canopy workspace export download links"
# The server streams without pause; a silence this long means it is stuck.
SERVER_TIMEOUT = httpx.Timeout(30.0, read=300.0)


class LinkExpired(Problem):
    """A genuine download link whose time is over."""

    def __init__(self) -> None:
        super().__init__(410, "link-expired", "Gone", "This download link has expired; read the export for a new one")


class ExportExpired(Problem):
    """A genuine download link to an export whose archive was removed (retention, or its workspace was purged)."""

    def __init__(self) -> None:
        super().__init__(410, "export-expired", "Gone", "This export's archive was removed; make a new export")


def snapshot(export: WorkspaceExport) -> dict[str, Any]:
    """The audited fields of an export."""
    return {
        "workspace_id": str(export.workspace_id),
        "state": export.state.value,
        "attempts": export.attempts,
        "size_bytes": export.size_bytes,
        "sha256": export.sha256,
        "posts_exported": export.posts_exported,
        "error": export.error,
    }


def _audit(session: Session, export: WorkspaceExport, actor: str, action: str) -> None:
    audit.record(
        session,
        actor=actor,
        action=f"workspace_export.{action}",
        target_type="workspace_export",
        target_id=export.id,
        organization_id=export.organization_id,
        after=snapshot(export),
    )


# --- requests and reads ------------------------------------------------------------------------------------------


def start(session: Session, ws: Workspace, actor: str) -> WorkspaceExport:
    """Queue an export of ``ws`` (added and audited, not committed): 409 unless its server runs, or while another
    export of it is queued or running."""
    if ws.lifecycle_state not in EXPORTABLE_STATES:
        raise Conflict(
            "workspace-not-running",
            f"The workspace is {ws.lifecycle_state.value}: exports are made from its running server (wake it first)",
        )
    current = repository.open_of(session, ws.id)
    if current is not None:
        raise Conflict(
            "export-in-progress", "An export of this workspace is already queued or running", export_id=str(current.id)
        )
    export = WorkspaceExport(
        workspace_id=ws.id,
        organization_id=ws.organization_id,
        state=ExportState.queued,
        requested_by=actor,
        attempts=0,
        bytes_written=0,
        posts_exported=0,
    )
    session.add(export)
    session.flush()
    _audit(session, export, actor, "create")
    return export


def request(session: Session, principal: Principal, workspace_id: uuid.UUID) -> WorkspaceExport:
    """:func:`start` for a caller who may see the workspace (another organization's is a 404)."""
    return start(session, workspaces.visible(session, principal, workspace_id), principal.actor)


def visible(session: Session, principal: Principal, workspace_id: uuid.UUID, export_id: uuid.UUID) -> WorkspaceExport:
    """An export of a workspace the caller may see; anything else is a 404."""
    workspaces.visible(session, principal, workspace_id)
    export = repository.get(session, export_id)
    if export is None or export.workspace_id != workspace_id:
        raise NotFound("Export")
    return export


def of_workspace(session: Session, principal: Principal, workspace_id: uuid.UUID, limit: int) -> list[WorkspaceExport]:
    """The newest exports of a workspace the caller may see."""
    workspaces.visible(session, principal, workspace_id)
    return repository.newest_of(session, workspace_id, max(1, min(limit, MAX_LIST)))


# --- signed links ------------------------------------------------------------------------------------------------


def _signature(export_id: uuid.UUID, expires: int) -> str:
    key = hmac.new(get_settings().secret_key.get_secret_value().encode(), _LINK_KEY_PURPOSE, hashlib.sha256).digest()
    mac = hmac.new(key, f"{export_id}:{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def download_link(export: WorkspaceExport) -> tuple[str, datetime] | None:
    """A fresh signed link to a completed export's archive, and when it expires; None before completion."""
    if export.state is not ExportState.completed:
        return None
    settings = get_settings()
    expires = int(utcnow().timestamp()) + settings.export_link_seconds
    token = f"{expires}.{_signature(export.id, expires)}"
    url = f"{settings.public_url.rstrip('/')}/api/v1/exports/{export.id}/download?token={token}"
    return url, datetime.fromtimestamp(expires, UTC)


def check_link(export_id: uuid.UUID, token: str) -> None:
    """404 unless ``token`` was signed for ``export_id``; 410 once it has expired."""
    expires, _, signature = token.partition(".")
    if not (expires.isascii() and expires.isdigit()) or not hmac.compare_digest(
        signature.encode(), _signature(export_id, int(expires)).encode()
    ):
        raise NotFound("Export")
    if int(expires) < utcnow().timestamp():
        raise LinkExpired()


def download(session: Session, export_id: uuid.UUID, token: str) -> tuple[WorkspaceExport, Iterator[bytes]]:
    """The export a link names and its archive's bytes (opened now), audited; committed."""
    check_link(export_id, token)
    export = repository.get(session, export_id)
    if export is not None and export.state is ExportState.expired:
        raise ExportExpired()
    if export is None or export.state is not ExportState.completed or export.location is None:
        raise NotFound("Export")
    try:
        chunks = archives.read(export.location)
    except archives.ArchiveMissing:
        raise NotFound("Export archive") from None
    _audit(session, export, LINK_ACTOR, "download")
    session.commit()
    return export, chunks


def file_name(session: Session, export: WorkspaceExport) -> str:
    """The archive's name for a download: ``<slug>-export-<date>.zip``."""
    ws = session.get(Workspace, export.workspace_id)
    slug = ws.slug if ws is not None else "workspace"
    return f"{slug}-export-{(export.completed_at or export.created_at):%Y%m%d-%H%M%S}.zip"


# --- retention ---------------------------------------------------------------------------------------------------


def expire(session: Session, export: WorkspaceExport, actor: str) -> None:
    """Remove a completed export's archive (idempotent) and mark it ``expired``, audited; not committed."""
    if export.location is not None:
        archives.discard(export.location)
    export.state = ExportState.expired
    _audit(session, export, actor, "expire")


def expire_of_workspace(workspace_id: uuid.UUID, actor: str) -> int:
    """Remove every kept archive of a workspace (its purge: nothing of a deleted customer outlives it but its final
    backup); committed. Returns how many."""
    with session_scope() as session:
        kept = repository.completed_of(session, workspace_id)
        for export in kept:
            expire(session, export, actor)
    return len(kept)


def apply_retention() -> list[uuid.UUID]:
    """Remove the archives of exports completed more than ``export_keep_days`` ago, a batch per transaction;
    returns their ids."""
    before = utcnow() - timedelta(days=get_settings().export_keep_days)
    gone: list[uuid.UUID] = []
    while True:
        with session_scope() as session:
            batch = repository.completed_before(session, before, RETENTION_BATCH)
            for export in batch:
                expire(session, export, RETENTION_ACTOR)
        gone += [export.id for export in batch]
        if len(batch) < RETENTION_BATCH:
            return gone


# --- the worker's side -------------------------------------------------------------------------------------------


def _location(ws: Workspace, export_id: uuid.UUID) -> dict[str, Any]:
    if get_settings().provider == "local":
        return archives.local_location(ws.id, export_id)
    outputs = ws.outputs or {}
    if not all(outputs.get(key) for key in ("bucket", "region", "kms_key_arn")):
        raise ProviderError("the workspace has no bucket and key yet")
    return archives.s3_location(outputs, short_id(ws.id), export_id)


def _finish(export_id: uuid.UUID, meter: archives.ArchiveMeter | None, error: str | None) -> str:
    with session_scope() as session:
        export = repository.get(session, export_id, for_update=True)
        assert export is not None
        export.completed_at = utcnow()
        if meter is not None:
            export.bytes_written = export.size_bytes = meter.size
            export.posts_exported = meter.posts
            export.sha256 = meter.sha256
        export.state = ExportState.failed if error else ExportState.completed
        export.error = error
        _audit(session, export, WORKER_ACTOR, "fail" if error else "complete")
    return f"failed: {error}" if error else f"completed: {meter.size if meter else 0} bytes"


def _metered(chunks: Iterable[bytes], meter: archives.ArchiveMeter, export_id: uuid.UUID) -> Iterator[bytes]:
    """``chunks``, fed to ``meter`` on the way, with the progress recorded on the row about once a second."""
    recorded = time.monotonic()
    for chunk in chunks:
        meter.feed(chunk)
        yield chunk
        if time.monotonic() - recorded >= PROGRESS_SECONDS:
            with session_scope() as session:
                repository.record_progress(session, export_id, meter.size, meter.posts)
            recorded = time.monotonic()


def run(export_id: uuid.UUID) -> str:
    """Make the archive of a queued (or interrupted) export; returns what happened. Failures are recorded on the
    row (``failed`` with the error, audited), never raised."""
    with session_scope() as session:
        export = repository.get(session, export_id, for_update=True)
        if export is None or export.state not in OPEN_STATES:
            return "nothing to do"
        ws = session.get(Workspace, export.workspace_id)
        assert ws is not None
        url = control_url(get_settings().provider, ws.outputs or {}, ws.endpoint_url)
        token = reveal(session, ws.id, Purpose.control)
        export.state = ExportState.running
        export.attempts += 1
        export.started_at = export.progress_at = utcnow()
        export.bytes_written = export.posts_exported = 0
        problem = None
        if ws.lifecycle_state not in EXPORTABLE_STATES or not url or not token:
            problem = f"export: the workspace is {ws.lifecycle_state.value}, its server is not running"
        else:
            try:
                export.location = _location(ws, export.id)
            except ProviderError as exc:
                problem = short_error("export", exc)
        location = export.location
    if problem is not None or location is None or url is None or token is None:
        return _finish(export_id, None, problem)
    meter = archives.ArchiveMeter()
    try:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.stream("GET", f"{url}/api/v4/canopy/export", headers=headers, timeout=SERVER_TIMEOUT) as response:
            if response.status_code != 200:
                raise ProviderError(f"the workspace server answered {response.status_code}")
            archives.save(location, _metered(response.iter_bytes(), meter, export_id))
    except (httpx.HTTPError, ProviderError, OSError, BotoCoreError, ClientError) as exc:
        logger.warning("export %s failed: %s", export_id, short_error("export", exc, [token]))
        return _finish(export_id, None, short_error("export", exc, [token]))
    return _finish(export_id, meter, None)
