"""Personal access tokens (``/api/v4/users/{user_id}/tokens`` and ``/api/v4/users/tokens/...``).

A token authenticates exactly like a login session: it owns a session row with the token's hash that never
expires, deleted when the token is revoked or disabled and recreated when it is enabled again."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import RowMapping, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from workspace_server.auth import CurrentSession, Session, create_token_session, token_hash
from workspace_server.db import Conn
from workspace_server.ids import is_valid_id, new_id, now_ms
from workspace_server.schema import sessions, user_access_tokens
from workspace_server.users import get_user, resolve_user_id, user_not_found
from workspace_server.web import (
    AppError,
    JSONResponse,
    PageQuery,
    PerPageQuery,
    invalid_body_param,
    invalid_url_param,
    permission_error,
    status_ok,
)

router = APIRouter(prefix="/api/v4/users")

TOKEN_ROLE = "system_user_access_token"
DESCRIPTION_MAX_CHARS = 255
PER_PAGE_MAX = 200


def token_json(token: RowMapping) -> dict[str, Any]:
    """A token in Mattermost's ``UserAccessToken`` shape, without the secret (shown once, at creation)."""
    return {
        "id": token["id"],
        "user_id": token["user_id"],
        "description": token["description"],
        "is_active": token["is_active"],
    }


def _may_manage_tokens(session: Session, user_id: str) -> bool:
    """System admins manage everyone's tokens (bots' included); users manage their own when they hold
    Mattermost's ``system_user_access_token`` role."""
    return session.is_system_admin or (user_id == session.user_id and TOKEN_ROLE in session.roles.split())


def token_not_found() -> AppError:
    """404 for a token id that matches nothing the caller may see."""
    return AppError(404, "app.user_access_token.get_by_user.app_error", "Unable to find the personal access token.")


async def _managed_token(conn: AsyncConnection, session: Session, token_id: str) -> RowMapping:
    if not is_valid_id(token_id):
        raise invalid_body_param("token_id")
    query = select(user_access_tokens).where(user_access_tokens.c.id == token_id)
    token = (await conn.execute(query)).mappings().first()
    if token is None:
        raise token_not_found()
    if not _may_manage_tokens(session, token["user_id"]):
        raise permission_error()
    return token


class TokenCreateBody(BaseModel):
    """``POST /users/{user_id}/tokens``."""

    description: str = ""


class TokenIdBody(BaseModel):
    """``POST /users/tokens/revoke`` (and ``disable``, ``enable``)."""

    token_id: str


@router.post("/{user_id}/tokens")
async def create_token(user_id: str, body: TokenCreateBody, conn: Conn, session: CurrentSession) -> JSONResponse:
    """Create a token for an active user; the answer is the only place the token itself appears."""
    target = resolve_user_id(user_id, session)
    if not _may_manage_tokens(session, target):
        raise permission_error()
    description = body.description.strip()
    if not description or len(description) > DESCRIPTION_MAX_CHARS:
        raise AppError(400, "model.user_access_token.is_valid.description.app_error", "Invalid description.")
    user = await get_user(conn, target)
    if user is None:
        raise user_not_found()
    if user["delete_at"]:
        raise AppError(400, "app.user_access_token.inactive_user.app_error", "The user is deactivated.")
    secret, token_id = new_id(), new_id()
    hashed = token_hash(secret)
    stmt = (
        insert(user_access_tokens)
        .values(id=token_id, token_hash=hashed, user_id=target, description=description, create_at=now_ms())
        .returning(user_access_tokens)
    )
    token = (await conn.execute(stmt)).mappings().one()
    await create_token_session(conn, target, token_id, hashed)
    await conn.commit()
    return JSONResponse(token_json(token) | {"token": secret})


@router.get("/{user_id}/tokens")
async def get_user_tokens(
    user_id: str,
    conn: Conn,
    session: CurrentSession,
    page: PageQuery = 0,
    per_page: PerPageQuery = 60,
) -> JSONResponse:
    """A page of the user's tokens."""
    target = resolve_user_id(user_id, session)
    if not _may_manage_tokens(session, target):
        raise permission_error()
    per_page = min(per_page, PER_PAGE_MAX)
    query = (
        select(user_access_tokens)
        .where(user_access_tokens.c.user_id == target)
        .order_by(user_access_tokens.c.create_at, user_access_tokens.c.id)
        .offset(page * per_page)
        .limit(per_page)
    )
    return JSONResponse([token_json(t) for t in (await conn.execute(query)).mappings()])


@router.get("/tokens/{token_id}")
async def get_token(token_id: str, conn: Conn, session: CurrentSession) -> JSONResponse:
    """One token (without its secret)."""
    if not is_valid_id(token_id):
        raise invalid_url_param("token_id")
    return JSONResponse(token_json(await _managed_token(conn, session, token_id)))


@router.post("/tokens/revoke")
async def revoke_token(body: TokenIdBody, conn: Conn, session: CurrentSession) -> JSONResponse:
    """Delete a token; its session goes with it, so it stops authenticating at once."""
    token = await _managed_token(conn, session, body.token_id)
    await conn.execute(delete(user_access_tokens).where(user_access_tokens.c.id == token["id"]))
    await conn.commit()
    return status_ok()


@router.post("/tokens/disable")
async def disable_token(body: TokenIdBody, conn: Conn, session: CurrentSession) -> JSONResponse:
    """Stop a token authenticating, keeping it to enable later."""
    token = await _managed_token(conn, session, body.token_id)
    await conn.execute(update(user_access_tokens).where(user_access_tokens.c.id == token["id"]).values(is_active=False))
    await conn.execute(delete(sessions).where(sessions.c.access_token_id == token["id"]))
    await conn.commit()
    return status_ok()


@router.post("/tokens/enable")
async def enable_token(body: TokenIdBody, conn: Conn, session: CurrentSession) -> JSONResponse:
    """Let a disabled token authenticate again."""
    token = await _managed_token(conn, session, body.token_id)
    if not token["is_active"]:
        await conn.execute(
            update(user_access_tokens).where(user_access_tokens.c.id == token["id"]).values(is_active=True)
        )
        await create_token_session(conn, token["user_id"], token["id"], token["token_hash"])
        await conn.commit()
    return status_ok()
