"""Workspace export routes under /api/v1 (thin: parse, authorize, call the service)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, StreamingResponse

from control_plane.core.deps import DbSession, IdempotencyKey
from control_plane.core.idempotency import run_once
from control_plane.core.problems import problem_responses
from control_plane.exports import service
from control_plane.exports.auth import Exporter
from control_plane.exports.schemas import ExportOut, ExportPage, export_out
from control_plane.exports.tasks import defer_export

router = APIRouter(prefix="/api/v1", tags=["exports"])

TOKEN_MAX = 200
_ARCHIVE: dict[int | str, dict[str, Any]] = {
    200: {"description": "The archive (a zip)", "content": {"application/zip": {"schema": {"type": "string"}}}}
}


@router.post(
    "/workspaces/{workspace_id}/exports",
    status_code=202,
    response_model=ExportOut,
    responses=problem_responses(401, 403, 404, 409),
)
def request_export(
    workspace_id: uuid.UUID, session: DbSession, principal: Exporter, key: IdempotencyKey
) -> JSONResponse:
    """Export the workspace: a worker makes an archive in Mattermost's bulk-export format (JSONL and files);
    reading the export shows its progress, then a signed download link."""

    def create() -> tuple[int, object]:
        export = service.request(session, principal, workspace_id)
        return 202, export_out(export, None).model_dump(mode="json")

    outcome = run_once(session, f"exports:{principal.account_id}", key, {"workspace_id": str(workspace_id)}, create)
    if not outcome.replayed:
        defer_export(uuid.UUID(outcome.body["id"]), workspace_id)
    return JSONResponse(outcome.body, status_code=outcome.status_code)


@router.get("/workspaces/{workspace_id}/exports", response_model=ExportPage, responses=problem_responses(401, 403, 404))
def list_exports(
    workspace_id: uuid.UUID,
    session: DbSession,
    principal: Exporter,
    limit: Annotated[int, Query(ge=1, le=service.MAX_LIST)] = 20,
) -> ExportPage:
    """The workspace's newest exports, each completed one with a fresh download link."""
    rows = service.of_workspace(session, principal, workspace_id, limit)
    return ExportPage(items=[export_out(export, service.download_link(export)) for export in rows])


@router.get(
    "/workspaces/{workspace_id}/exports/{export_id}",
    response_model=ExportOut,
    responses=problem_responses(401, 403, 404),
)
def get_export(workspace_id: uuid.UUID, export_id: uuid.UUID, session: DbSession, principal: Exporter) -> ExportOut:
    """One export: state, progress (bytes and posts so far), and once completed a fresh download link."""
    export = service.visible(session, principal, workspace_id, export_id)
    return export_out(export, service.download_link(export))


@router.get(
    "/exports/{export_id}/download",
    response_class=StreamingResponse,
    responses={**_ARCHIVE, **problem_responses(404, 410)},
)
def download_export(
    export_id: uuid.UUID,
    session: DbSession,
    token: Annotated[str, Query(min_length=1, max_length=TOKEN_MAX, description="the signed token of the link")],
) -> StreamingResponse:
    """The export's archive, through the signed link an export read handed out (no other credential: the link is
    one until it expires)."""
    export, chunks = service.download(session, export_id, token)
    headers = {"Content-Disposition": f'attachment; filename="{service.file_name(session, export)}"'}
    if export.size_bytes is not None:
        headers["Content-Length"] = str(export.size_bytes)
    return StreamingResponse(chunks, media_type="application/zip", headers=headers)
