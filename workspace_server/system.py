"""System routes (``/api/v4/system``)."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from workspace_server.migrate import VERSION_TABLE
from workspace_server.release import RELEASE_VERSION, SCHEMA_REVISION
from workspace_server.settings import Settings
from workspace_server.web import MATTERMOST_VERSION, AppError, JSONResponse

router = APIRouter(prefix="/api/v4")
log = logging.getLogger(__name__)

PING_DB_TIMEOUT_SECONDS = 5.0


_SCHEMA_REVISION_QUERY = text(f"SELECT version_num FROM {VERSION_TABLE}")


async def _schema_revision(engine: AsyncEngine) -> str | None:
    """The database's schema revision, or ``None`` when it cannot be reached: the ping's one query (it costs no more
    than a ``SELECT 1``)."""
    try:
        async with asyncio.timeout(PING_DB_TIMEOUT_SECONDS), engine.connect() as conn:
            revision = await conn.scalar(_SCHEMA_REVISION_QUERY)
    except Exception as exc:
        log.warning("ping: database unreachable: %s", type(exc).__name__)
        return None
    return str(revision or "")


def _schema_level(request: Request, revision: str | None) -> int:
    """``revision`` as a schema level, remembered; the last one seen (at first this release's) when unknown."""
    if revision is not None and revision.isdigit():
        request.app.state.schema_level = int(revision)
    level: int = getattr(request.app.state, "schema_level", SCHEMA_REVISION)
    return level


@router.get("/system/ping")
async def ping(request: Request) -> JSONResponse:
    """Health check, no authentication: 200 with status "OK", or 500 "unhealthy" when the database is down. Also
    says which Canopy release serves and the schema level the database is at (``CanopyRelease``,
    ``CanopySchema``: Mattermost clients ignore them)."""
    revision = await _schema_revision(request.app.state.engine)
    status = "OK" if revision is not None else "unhealthy"
    body = {
        "status": status,
        "database_status": status,
        "ActiveSearchBackend": "database",
        "AndroidLatestVersion": "",
        "AndroidMinVersion": "",
        "IosLatestVersion": "",
        "IosMinVersion": "",
        "CanopyRelease": RELEASE_VERSION,
        "CanopySchema": _schema_level(request, revision),
    }
    return JSONResponse(body, status_code=200 if revision is not None else 500)


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
