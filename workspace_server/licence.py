"""The licence clients read (``GET /api/v4/license/client``): Mattermost's unlicensed answer for now. Licence and
trial data will come from here when the workspace has any."""

from __future__ import annotations

from fastapi import APIRouter

from workspace_server.web import AppError, JSONResponse, invalid_url_param

router = APIRouter(prefix="/api/v4")


def client_licence() -> dict[str, str]:
    """The licence as Mattermost shows it to clients (string values): this workspace has none."""
    return {"IsLicensed": "false"}


@router.get("/license/client")
async def get_client_licence(format: str = "") -> JSONResponse:
    """The client licence in the ``old`` format (the only one Mattermost serves); no session needed."""
    if not format:
        raise AppError(
            400,
            "api.license.client.old_format.app_error",
            "New format for the client license is not supported yet. Please specify format=old in the query string.",
        )
    if format != "old":
        raise invalid_url_param("format")
    return JSONResponse(client_licence())
