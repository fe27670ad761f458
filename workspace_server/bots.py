"""Bot accounts (``/api/v4/bots``): users with ``is_bot`` set, no password, and an owner; they authenticate
with personal access tokens and never count as activated users."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import RowMapping, Select, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from workspace_server.auth import CurrentSession, Session
from workspace_server.db import Conn
from workspace_server.ids import is_valid_id, now_ms
from workspace_server.schema import bots, users
from workspace_server.users import insert_user, set_active, validate_username
from workspace_server.web import (
    AppError,
    JSONResponse,
    PageQuery,
    PerPageQuery,
    invalid_body_param,
    invalid_url_param,
    permission_error,
)

router = APIRouter(prefix="/api/v4/bots")

PER_PAGE_MAX = 200
DESCRIPTION_MAX_CHARS = 1024
DISPLAY_NAME_MAX_CHARS = 64


def bot_json(bot: RowMapping) -> dict[str, Any]:
    """A bot in Mattermost's ``Bot`` shape."""
    return {
        "user_id": bot["user_id"],
        "username": bot["username"],
        "display_name": bot["display_name"],
        "description": bot["description"],
        "owner_id": bot["owner_id"],
        "create_at": bot["create_at"],
        "update_at": bot["update_at"],
        "delete_at": bot["delete_at"],
    }


def _select_bots() -> Select[Any]:
    return select(bots, users.c.username).join(users, users.c.id == bots.c.user_id)


def bot_not_found() -> AppError:
    """404 for a bot id that matches nothing the caller may see."""
    return AppError(404, "store.sql_bot.get.missing.app_error", "Bot does not exist.")


async def _visible_bot(conn: AsyncConnection, session: Session, bot_user_id: str) -> RowMapping:
    """The bot, if the caller is a system admin or its owner."""
    if not is_valid_id(bot_user_id):
        raise invalid_url_param("bot_user_id")
    bot: RowMapping | None = (
        (await conn.execute(_select_bots().where(bots.c.user_id == bot_user_id))).mappings().first()
    )
    if bot is None or not (session.is_system_admin or bot["owner_id"] == session.user_id):
        raise bot_not_found()
    return bot


def _check_profile(display_name: str | None, description: str | None) -> None:
    if display_name is not None and len(display_name) > DISPLAY_NAME_MAX_CHARS:
        raise invalid_body_param("display_name")
    if description is not None and len(description) > DESCRIPTION_MAX_CHARS:
        raise invalid_body_param("description")


class BotCreateBody(BaseModel):
    """``POST /bots``."""

    username: str
    display_name: str = ""
    description: str = ""


class BotPatchBody(BaseModel):
    """``PUT /bots/{bot_user_id}``."""

    username: str | None = None
    display_name: str | None = None
    description: str | None = None


@router.post("", status_code=201)
async def create_bot(body: BotCreateBody, conn: Conn, session: CurrentSession) -> JSONResponse:
    """Create a bot and its user (system admins only); the caller owns it."""
    if not session.is_system_admin:
        raise permission_error()
    username = validate_username(body.username)
    _check_profile(body.display_name, body.description)
    user = await insert_user(
        conn,
        email=f"{username}@localhost",
        username=username,
        password_hash="",
        profile={"first_name": body.display_name},
    )
    if user is None:
        raise AppError(400, "app.user.save.username_exists.app_error", "An account with that username already exists.")
    await conn.execute(update(users).where(users.c.id == user["id"]).values(is_bot=True))
    stmt = insert(bots).values(
        user_id=user["id"],
        display_name=body.display_name,
        description=body.description,
        owner_id=session.user_id,
        create_at=user["create_at"],
        update_at=user["create_at"],
    )
    await conn.execute(stmt)
    bot = (await conn.execute(_select_bots().where(bots.c.user_id == user["id"]))).mappings().one()
    await conn.commit()
    return JSONResponse(bot_json(bot), status_code=201)


@router.get("")
async def get_bots(
    conn: Conn,
    session: CurrentSession,
    page: PageQuery = 0,
    per_page: PerPageQuery = 60,
    include_deleted: bool = False,
) -> JSONResponse:
    """A page of the bots the caller may see: all of them for system admins, else the ones they own."""
    per_page = min(per_page, PER_PAGE_MAX)
    query = _select_bots().order_by(users.c.username).offset(page * per_page).limit(per_page)
    if not include_deleted:
        query = query.where(bots.c.delete_at == 0)
    if not session.is_system_admin:
        query = query.where(bots.c.owner_id == session.user_id)
    return JSONResponse([bot_json(b) for b in (await conn.execute(query)).mappings()])


@router.get("/{bot_user_id}")
async def get_bot(bot_user_id: str, conn: Conn, session: CurrentSession, include_deleted: bool = False) -> JSONResponse:
    """One bot."""
    bot = await _visible_bot(conn, session, bot_user_id)
    if bot["delete_at"] and not include_deleted:
        raise bot_not_found()
    return JSONResponse(bot_json(bot))


@router.put("/{bot_user_id}")
async def patch_bot(bot_user_id: str, body: BotPatchBody, conn: Conn, session: CurrentSession) -> JSONResponse:
    """Change a bot's username, display name or description (its owner or a system admin)."""
    bot = await _visible_bot(conn, session, bot_user_id)
    _check_profile(body.display_name, body.description)
    now = now_ms()
    bot_values: dict[str, Any] = {"update_at": now}
    user_values: dict[str, Any] = {"update_at": now}
    if body.display_name is not None:
        bot_values["display_name"] = user_values["first_name"] = body.display_name
    if body.description is not None:
        bot_values["description"] = body.description
    if body.username is not None and body.username.lower() != bot["username"]:
        user_values["username"] = validate_username(body.username)
        taken = await conn.scalar(select(users.c.id).where(users.c.username == user_values["username"]))
        if taken is not None:
            raise AppError(
                400, "app.user.save.username_exists.app_error", "An account with that username already exists."
            )
    await conn.execute(update(bots).where(bots.c.user_id == bot["user_id"]).values(bot_values))
    await conn.execute(update(users).where(users.c.id == bot["user_id"]).values(user_values))
    updated = (await conn.execute(_select_bots().where(bots.c.user_id == bot["user_id"]))).mappings().one()
    await conn.commit()
    return JSONResponse(bot_json(updated))


async def _set_bot_active(conn: AsyncConnection, session: Session, bot_user_id: str, active: bool) -> JSONResponse:
    bot = await _visible_bot(conn, session, bot_user_id)
    now = now_ms()
    await conn.execute(update(bots).where(bots.c.user_id == bot["user_id"]).values(delete_at=0 if active else now))
    await set_active(conn, bot["user_id"], active)  # commits
    updated = (await conn.execute(_select_bots().where(bots.c.user_id == bot["user_id"]))).mappings().one()
    return JSONResponse(bot_json(updated))


@router.post("/{bot_user_id}/disable")
async def disable_bot(bot_user_id: str, conn: Conn, session: CurrentSession) -> JSONResponse:
    """Deactivate a bot: its tokens stop authenticating until it is enabled again."""
    return await _set_bot_active(conn, session, bot_user_id, False)


@router.post("/{bot_user_id}/enable")
async def enable_bot(bot_user_id: str, conn: Conn, session: CurrentSession) -> JSONResponse:
    """Reactivate a bot."""
    return await _set_bot_active(conn, session, bot_user_id, True)
