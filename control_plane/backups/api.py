"""Workspace backup and restore routes under /api/v1 (thin: parse, authorize, call the service)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse

from control_plane.backups import service
from control_plane.backups.auth import BackupReader, BackupTaker, Restorer
from control_plane.backups.schemas import BackupOut, BackupPage, RestoreOut, RestoreRequest, backup_out, restore_out
from control_plane.backups.tasks import defer_backup
from control_plane.core.deps import DbSession, IdempotencyKey
from control_plane.core.idempotency import run_once
from control_plane.core.problems import problem_responses
from control_plane.reconciler.queue import Cause, defer_reconcile

router = APIRouter(prefix="/api/v1", tags=["backups"])


@router.post(
    "/workspaces/{workspace_id}/backups",
    status_code=202,
    response_model=BackupOut,
    responses=problem_responses(401, 403, 404, 409),
)
def create_backup(
    workspace_id: uuid.UUID, session: DbSession, principal: BackupTaker, key: IdempotencyKey
) -> JSONResponse:
    """Back the workspace up now: a worker copies its database, then its files, encrypted; reading the backup
    shows its state, then its size, checksum, counts and duration. 409 for a workspace with no data."""

    def create() -> tuple[int, object]:
        backup = service.request(session, principal, workspace_id)
        return 202, backup_out(backup).model_dump(mode="json")

    outcome = run_once(session, f"backups:{principal.account_id}", key, {"workspace_id": str(workspace_id)}, create)
    if not outcome.replayed:
        defer_backup(uuid.UUID(outcome.body["id"]), workspace_id)
    return JSONResponse(outcome.body, status_code=outcome.status_code)


@router.get("/workspaces/{workspace_id}/backups", response_model=BackupPage, responses=problem_responses(401, 403, 404))
def list_backups(
    workspace_id: uuid.UUID,
    session: DbSession,
    principal: BackupReader,
    limit: Annotated[int, Query(ge=1, le=service.MAX_LIST)] = 20,
) -> BackupPage:
    """The workspace's newest backups."""
    return BackupPage(items=[backup_out(b) for b in service.of_workspace(session, principal, workspace_id, limit)])


@router.get(
    "/workspaces/{workspace_id}/backups/{backup_id}",
    response_model=BackupOut,
    responses=problem_responses(401, 403, 404),
)
def get_backup(workspace_id: uuid.UUID, backup_id: uuid.UUID, session: DbSession, principal: BackupReader) -> BackupOut:
    """One backup."""
    return backup_out(service.visible(session, principal, workspace_id, backup_id))


@router.post(
    "/workspaces/{workspace_id}/backups/{backup_id}/restore",
    status_code=202,
    response_model=RestoreOut,
    responses=problem_responses(401, 403, 404, 409, 422, 503),
)
def restore_backup(
    workspace_id: uuid.UUID,
    backup_id: uuid.UUID,
    body: Annotated[RestoreRequest, Body()],
    session: DbSession,
    principal: Restorer,
) -> RestoreOut:
    """Restore a completed backup: ``{"mode": "clone", "slug": ...}`` makes a new workspace with the backup's
    content (the requester its initial admin); ``{"mode": "in_place", "confirm": "<slug>"}`` puts the workspace back
    to the backup (what was posted since is lost; it answers 503 with ``Retry-After`` meanwhile)."""
    restore = service.request_restore(session, principal, workspace_id, backup_id, body)
    defer_reconcile(restore.target_workspace_id, Cause.restore)
    return restore_out(restore)


@router.get(
    "/workspaces/{workspace_id}/backups/{backup_id}/restore",
    response_model=RestoreOut,
    responses=problem_responses(401, 403, 404),
)
def get_restore(
    workspace_id: uuid.UUID, backup_id: uuid.UUID, session: DbSession, principal: BackupReader
) -> RestoreOut:
    """The backup's newest restore: its state, and into which workspace."""
    return restore_out(service.newest_restore(session, principal, workspace_id, backup_id))
