"""Internal endpoints for the Canopy control plane (``/api/v4/canopy``), authenticated by ``WS_CONTROL_TOKEN``."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel
from sqlalchemy import RowMapping, func, select
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.responses import StreamingResponse

from workspace_server.activity import Activity
from workspace_server.auth import is_argon2_hash
from workspace_server.db import Conn
from workspace_server.files import storage_for, storage_usage
from workspace_server.plan import Plan, answer, plan_of, store_plan, stored_plan
from workspace_server.schema import posts, teams
from workspace_server.teams import join_team
from workspace_server.users import (
    ACTIVATED_USERS,
    SYSTEM_ADMIN,
    get_user_by_email,
    insert_user,
    user_json,
    validate_email,
    validate_username,
)
from workspace_server.web import AppError, JSONResponse, invalid_body_param


def require_control_token(request: Request) -> None:
    """401 unless the request carries ``Authorization: Bearer <WS_CONTROL_TOKEN>`` (compared in constant time)."""
    expected = request.app.state.settings.control_token.get_secret_value().encode()
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        raise AppError(401, "api.canopy.control_token.app_error", "Invalid or missing control token.")


router = APIRouter(prefix="/api/v4/canopy", dependencies=[Depends(require_control_token)])


class InitialAdminBody(BaseModel):
    """``PUT /canopy/initial_admin``."""

    email: str
    username: str
    password_hash: str


async def ensure_initial_admin(
    conn: AsyncConnection, team_name: str, email: str, username: str, password_hash: str
) -> RowMapping:
    """The workspace's first system admin, created if absent with the argon2 hash the control plane made, as admin
    of team ``team_name`` and member of its default channels (the caller commits). An existing user with that
    email is returned as it is. Used by ``PUT /canopy/initial_admin`` and at start (``WS_INITIAL_ADMIN_*``)."""
    email, username = validate_email(email), validate_username(username)
    if not is_argon2_hash(password_hash):
        raise invalid_body_param("password_hash")
    user = await get_user_by_email(conn, email)
    if user is not None:
        return user
    user = await insert_user(
        conn, email=email, username=username, password_hash=password_hash, roles=SYSTEM_ADMIN, email_verified=True
    )
    if user is None:
        # Either a concurrent call created it first, or the username belongs to someone else.
        user = await get_user_by_email(conn, email)
        if user is None:
            raise AppError(
                400, "app.user.save.username_exists.app_error", "An account with that username already exists."
            )
        return user
    team_id = (await conn.execute(select(teams.c.id).where(teams.c.name == team_name))).scalar_one()
    await join_team(conn, team_id, user["id"], admin=True)
    return user


@router.put("/initial_admin")
async def put_initial_admin(body: InitialAdminBody, request: Request, conn: Conn) -> JSONResponse:
    """Create the workspace's first system admin (see :func:`ensure_initial_admin`); idempotent."""
    team_name = request.app.state.settings.team_name
    user = await ensure_initial_admin(conn, team_name, body.email, body.username, body.password_hash)
    await conn.commit()
    return JSONResponse(user_json(user, private=True))


@router.get("/usage")
async def get_usage(request: Request, conn: Conn) -> JSONResponse:
    """Billing counters: activated (not deactivated, not bot) users, posts not deleted, bytes of stored files."""
    post_count = select(func.count()).where(posts.c.delete_at == 0)
    row = (await conn.execute(select(ACTIVATED_USERS.scalar_subquery(), post_count.scalar_subquery()))).one()
    stored = await storage_usage(request.app, conn)
    return JSONResponse({"activated_users": row[0], "posts": row[1], "storage_bytes": stored})


@router.get("/activity")
async def get_activity(request: Request, conn: Conn) -> JSONResponse:
    """The workspace's last use in ms (see :mod:`activity`): what the control plane's idle hibernation reads."""
    used: Activity = request.app.state.activity
    return JSONResponse({"last_request_at": await used.last_use_ms(conn)})


@router.put("/plan")
async def put_plan(body: Plan, conn: Conn) -> JSONResponse:
    """Set the workspace's billing plan (see :mod:`plan`); idempotent, and cheap when nothing changes. Answers the
    stored plan."""
    await store_plan(conn, body)
    await conn.commit()
    return JSONResponse(answer(body))


@router.get("/plan")
async def get_plan(conn: Conn) -> JSONResponse:
    """The workspace's billing plan (:data:`plan.NO_PLAN` when the control plane never set one)."""
    return JSONResponse(answer(plan_of(await stored_plan(conn))))


@router.get("/export", response_model=None)
async def get_export(request: Request) -> StreamingResponse:
    """The whole workspace as a Mattermost bulk-import archive (a zip), streamed as it is made (see :mod:`export`)."""
    from workspace_server.export import export_archive  # on first use: the idle server does not load it

    return StreamingResponse(
        export_archive(request.app.state.engine, storage_for(request.app)),
        media_type="application/zip",
        headers={"Content-Disposition": 'attachment; filename="export.zip"'},
    )
