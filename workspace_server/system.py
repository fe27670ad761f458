"""System routes (``/api/v4/system``)."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from workspace_server.settings import Settings
from workspace_server.web import MATTERMOST_VERSION, AppError, JSONResponse

router = APIRouter(prefix="/api/v4")
log = logging.getLogger(__name__)

PING_DB_TIMEOUT_SECONDS = 5.0


async def _database_ok(engine: AsyncEngine) -> bool:
    try:
        async with asyncio.timeout(PING_DB_TIMEOUT_SECONDS), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        log.warning("ping: database unreachable: %s", type(exc).__name__)
        return False
    return True


@router.get("/system/ping")
async def ping(request: Request) -> JSONResponse:
    """Health check, no authentication: 200 with status "OK", or 500 "unhealthy" when the database is down."""
    healthy = await _database_ok(request.app.state.engine)
    status = "OK" if healthy else "unhealthy"
    body = {
        "status": status,
        "database_status": status,
        "ActiveSearchBackend": "database",
        "AndroidLatestVersion": "",
        "AndroidMinVersion": "",
        "IosLatestVersion": "",
        "IosMinVersion": "",
    }
    return JSONResponse(body, status_code=200 if healthy else 500)


@router.get("/config/client")
async def client_config(request: Request, format: str = "") -> JSONResponse:
    """The subset of Mattermost's client configuration (``format=old``, the only format Mattermost serves
    without a license) that clients read before logging in."""
    if format != "old":
        raise AppError(
            501,
            "api.config.client.old_format.app_error",
            "New format for the client configuration is not supported yet. "
            "Please specify format=old in the query string.",
        )
    settings: Settings = request.app.state.settings
    return JSONResponse(
        {
            "Version": MATTERMOST_VERSION,
            "BuildNumber": "canopy",
            "SiteName": settings.site_name,
            "SiteURL": settings.public_url,
            "EnableSignUpWithEmail": "true",
            "EnableSignInWithEmail": "true",
            "EnableSignInWithUsername": "true",
            "EnableOpenServer": str(settings.enable_open_server).lower(),
            "EnableUserCreation": "true",
            "DiagnosticsEnabled": "false",
        }
    )
