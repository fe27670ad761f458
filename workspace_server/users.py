"""Users: accounts, login and logout (``/api/v4/users``)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from pydantic import BaseModel
from sqlalchemy import RowMapping, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from workspace_server.auth import (
    CurrentSession,
    OptionalSession,
    Session,
    clear_session_cookies,
    create_session,
    hash_password,
    revoke_session,
    revoke_user_sessions,
    set_session_cookies,
    verify_password,
)
from workspace_server.db import Conn
from workspace_server.ids import is_valid_id, new_id, now_ms
from workspace_server.schema import users
from workspace_server.web import (
    AppError,
    JSONResponse,
    invalid_body_param,
    invalid_url_param,
    permission_error,
    status_ok,
)

router = APIRouter(prefix="/api/v4/users")

SYSTEM_USER = "system_user"
SYSTEM_ADMIN = "system_admin system_user"
# Mattermost's defaults for a new account; stored values override them.
DEFAULT_NOTIFY_PROPS = {
    "channel": "true",
    "comments": "never",
    "desktop": "mention",
    "desktop_sound": "true",
    "email": "true",
    "first_name": "false",
    "mention_keys": "",
    "push": "mention",
    "push_status": "away",
}
DEFAULT_TIMEZONE = {"automaticTimezone": "", "manualTimezone": "", "useAutomaticTimezone": "true"}
_USERNAME = re.compile(r"^[a-z][a-z0-9._-]{2,21}$")
_RESERVED_USERNAMES = frozenset({"all", "channel", "here", "matterbot", "system"})
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 72


def user_json(user: RowMapping, *, private: bool) -> dict[str, Any]:
    """A user in Mattermost's ``User`` shape; ``private`` adds what only the user and admins see.
    The password hash is never part of it."""
    data: dict[str, Any] = {
        "id": user["id"],
        "create_at": user["create_at"],
        "update_at": user["update_at"],
        "delete_at": user["delete_at"],
        "username": user["username"],
        "auth_data": "",
        "auth_service": "",
        "email": user["email"],
        "nickname": user["nickname"],
        "first_name": user["first_name"],
        "last_name": user["last_name"],
        "position": user["position"],
        "roles": user["roles"],
        "props": user["props"],
        "last_picture_update": user["last_picture_update"],
        "locale": user["locale"],
        "timezone": {**DEFAULT_TIMEZONE, **user["timezone"]},
        "disable_welcome_email": False,
    }
    if user["is_bot"]:
        data["is_bot"] = True
    if private:
        data["email_verified"] = user["email_verified"]
        data["notify_props"] = {**DEFAULT_NOTIFY_PROPS, **user["notify_props"]}
        data["last_password_update"] = user["last_password_update"]
        data["mfa_active"] = False
    return data


def user_json_for(session: Session, user: RowMapping) -> dict[str, Any]:
    """``user`` as ``session``'s caller may see it: all of it for themselves and for system admins."""
    return user_json(user, private=session.is_system_admin or user["id"] == session.user_id)


def user_not_found() -> AppError:
    """404 for a user id, name or email that matches nobody."""
    return AppError(404, "app.user.missing_account.const", "Unable to find the user.")


def validate_username(username: str) -> str:
    """``username`` lower-cased, or 400 if Mattermost would refuse it."""
    name = username.lower()
    if not _USERNAME.match(name) or name in _RESERVED_USERNAMES:
        raise AppError(
            400,
            "model.user.is_valid.username.app_error",
            "Username must begin with a letter, and contain between 3 to 22 lowercase characters made up "
            'of numbers, letters, and the symbols ".", "-", and "_".',
        )
    return name


def validate_email(email: str) -> str:
    """``email`` lower-cased, or 400 if it is not an address."""
    address = email.strip().lower()
    if len(address) > 128 or not _EMAIL.match(address):
        raise AppError(400, "model.user.is_valid.email.app_error", "Invalid email.")
    return address


async def insert_user(
    conn: AsyncConnection,
    *,
    email: str,
    username: str,
    password_hash: str,
    roles: str = SYSTEM_USER,
    email_verified: bool = False,
    profile: dict[str, str] | None = None,
) -> RowMapping | None:
    """Insert a user (validated, lower-cased ``email`` and ``username``); ``None`` if either is taken.
    The caller commits."""
    now = now_ms()
    stmt = (
        insert(users)
        .values(
            id=new_id(),
            create_at=now,
            update_at=now,
            email=email,
            username=username,
            password=password_hash,
            roles=roles,
            email_verified=email_verified,
            last_password_update=now,
            **(profile or {}),
        )
        .on_conflict_do_nothing()
        .returning(users)
    )
    user: RowMapping | None = (await conn.execute(stmt)).mappings().first()
    return user


async def get_user(conn: AsyncConnection, user_id: str) -> RowMapping | None:
    """The user with id ``user_id``, active or not."""
    return (await conn.execute(select(users).where(users.c.id == user_id))).mappings().first()


async def get_user_by_email(conn: AsyncConnection, email: str) -> RowMapping | None:
    """The user with address ``email`` (case-insensitive), active or not."""
    query = select(users).where(users.c.email == email.strip().lower())
    return (await conn.execute(query)).mappings().first()


def resolve_user_id(user_id: str, session: Session) -> str:
    """``user_id`` from a path, with Mattermost's ``me`` alias; 400 if malformed."""
    if user_id == "me":
        return session.user_id
    if not is_valid_id(user_id):
        raise invalid_url_param("user_id")
    return user_id


class LoginBody(BaseModel):
    """``POST /users/login``."""

    login_id: str = ""
    password: str = ""


class UserCreateBody(BaseModel):
    """``POST /users``."""

    email: str
    username: str
    password: str
    nickname: str = ""
    first_name: str = ""
    last_name: str = ""
    position: str = ""
    locale: str = "en"
    email_verified: bool = False


@router.post("/login")
async def login(body: LoginBody, request: Request, conn: Conn) -> JSONResponse:
    """Check an email-or-username and password; answer the user with the session ``Token`` header and cookie."""
    if not body.password:
        raise AppError(400, "api.user.login.blank_pwd.app_error", "Password field must not be blank")
    login_id = body.login_id.strip().lower()
    query = select(users).where(or_(users.c.email == login_id, users.c.username == login_id))
    user = (await conn.execute(query)).mappings().first() if login_id else None
    if not await verify_password(user["password"] if user else None, body.password) or user is None:
        raise AppError(
            401,
            "api.user.login.invalid_credentials_email_username",
            "Enter a valid email or username and/or password.",
        )
    if user["delete_at"]:
        raise AppError(
            401,
            "api.user.login.inactive.app_error",
            "Login failed because your account has been deactivated. Please contact an administrator.",
        )
    new = await create_session(conn, user["id"])
    await conn.commit()
    response = JSONResponse(user_json(user, private=True))
    response.headers["Token"] = new.token
    secure = request.app.state.settings.public_url.startswith("https://")
    set_session_cookies(response, new, user["id"], secure=secure)
    return response


@router.post("/logout")
async def logout(conn: Conn, session: OptionalSession) -> JSONResponse:
    """End the caller's session, if any, and expire the login cookies."""
    if session is not None:
        await revoke_session(conn, session.id)
        await conn.commit()
    response = status_ok()
    clear_session_cookies(response)
    return response


@router.post("", status_code=201)
async def create_user(body: UserCreateBody, request: Request, conn: Conn, session: OptionalSession) -> JSONResponse:
    """Create an account. System admins always may; anyone else only when the server allows open sign-up
    (``WS_ENABLE_OPEN_SERVER``, off by default as in Mattermost)."""
    is_admin = session is not None and session.is_system_admin
    if not is_admin and not request.app.state.settings.enable_open_server:
        raise AppError(
            403,
            "api.user.create_user.no_open_server",
            "This server does not allow open signups. Please speak with your Administrator to receive an invitation.",
        )
    email, username = validate_email(body.email), validate_username(body.username)
    if not PASSWORD_MIN_LENGTH <= len(body.password) <= PASSWORD_MAX_LENGTH:
        raise AppError(
            400,
            "model.user.is_valid.pwd_length.app_error",
            f"Your password must contain between {PASSWORD_MIN_LENGTH} and {PASSWORD_MAX_LENGTH} characters.",
        )
    profile = {"nickname": body.nickname, "first_name": body.first_name, "last_name": body.last_name}
    profile |= {"position": body.position, "locale": body.locale}
    for field, limit in (("nickname", 64), ("first_name", 64), ("last_name", 64), ("position", 128), ("locale", 5)):
        if len(profile[field]) > limit:
            raise invalid_body_param(field)
    user = await insert_user(
        conn,
        email=email,
        username=username,
        password_hash=await hash_password(body.password),
        email_verified=body.email_verified and is_admin,
        profile=profile,
    )
    if user is None:
        if await get_user_by_email(conn, email) is not None:
            raise AppError(400, "app.user.save.email_exists.app_error", "An account with that email already exists.")
        raise AppError(400, "app.user.save.username_exists.app_error", "An account with that username already exists.")
    await conn.commit()
    return JSONResponse(user_json(user, private=True), status_code=201)


@router.post("/ids")
async def get_users_by_ids(user_ids: Annotated[list[str], Body()], conn: Conn, session: CurrentSession) -> JSONResponse:
    """The users with the given ids (unknown ids are skipped)."""
    if not user_ids or len(user_ids) > 1000 or not all(map(is_valid_id, user_ids)):
        raise invalid_body_param("user_ids")
    rows = (await conn.execute(select(users).where(users.c.id.in_(set(user_ids))))).mappings().all()
    return JSONResponse([user_json_for(session, u) for u in rows])


@router.get("/username/{username}")
async def get_user_by_username(username: str, conn: Conn, session: CurrentSession) -> JSONResponse:
    """The user called ``username``."""
    query = select(users).where(users.c.username == username.lower())
    user = (await conn.execute(query)).mappings().first()
    if user is None:
        raise user_not_found()
    return JSONResponse(user_json_for(session, user))


@router.get("/email/{email}")
async def get_user_by_email_route(email: str, conn: Conn, session: CurrentSession) -> JSONResponse:
    """The user with address ``email``."""
    user = await get_user_by_email(conn, email)
    if user is None:
        raise user_not_found()
    return JSONResponse(user_json_for(session, user))


@router.get("/{user_id}")
async def get_user_route(user_id: str, conn: Conn, session: CurrentSession) -> JSONResponse:
    """The user ``user_id`` (``me`` for the caller)."""
    user = await get_user(conn, resolve_user_id(user_id, session))
    if user is None:
        raise user_not_found()
    return JSONResponse(user_json_for(session, user))


@router.delete("/{user_id}")
async def deactivate_user(user_id: str, conn: Conn, session: CurrentSession) -> JSONResponse:
    """Deactivate an account and end its sessions (system admins only, as by default in Mattermost)."""
    target = resolve_user_id(user_id, session)
    if not session.is_system_admin:
        raise permission_error()
    now = now_ms()
    stmt = (
        update(users)
        .where(users.c.id == target)
        .values(delete_at=func.coalesce(func.nullif(users.c.delete_at, 0), now), update_at=now)
        .returning(users.c.id)
    )
    if (await conn.execute(stmt)).first() is None:
        raise user_not_found()
    await revoke_user_sessions(conn, target)
    await conn.commit()
    return status_ok()
