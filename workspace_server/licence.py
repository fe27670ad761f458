"""What the workspace is licensed for, as clients read it: the client licence (``GET /api/v4/license/client``,
Mattermost's unlicensed answer for now) and the server limits (``GET /api/v4/limits/server``: none imposed).
Licence and trial data will come from here when the workspace has any."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import func, select

from workspace_server.auth import CurrentSession
from workspace_server.db import Conn
from workspace_server.schema import users
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


@router.get("/limits/server")
async def get_server_limits(conn: Conn, session: CurrentSession) -> JSONResponse:
    """Mattermost's ``ServerLimits``: no user or history limit (0); the active user count for system admins
    only, as Mattermost shows it."""
    active = 0
    if session.is_system_admin:
        query = select(func.count()).where(users.c.delete_at == 0, users.c.is_bot.is_(False))
        active = int(await conn.scalar(query) or 0)
    return JSONResponse(
        {
            "activeUserCount": active,
            "maxUsersLimit": 0,
            "maxUsersHardLimit": 0,
            "lastAccessiblePostTime": 0,
            "postHistoryLimit": 0,
            "singleChannelGuestCount": 0,
            "singleChannelGuestLimit": 0,
        }
    )
