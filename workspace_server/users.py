"""Users: accounts, login and logout (``/api/v4/users``)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

from fastapi import APIRouter, Body, Request
from pydantic import BaseModel
from sqlalchemy import RowMapping, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from workspace_server import events
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
ACTIVATED_USERS: Final = select(func.count()).where(users.c.delete_at == 0, users.c.is_bot.is_(False))
"""How many activated users the workspace has (not deactivated, not bots): its seats, as billing counts them."""
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
    set_session_cookies(request, response, new, user["id"])
    return response


@router.post("/logout")
async def logout(request: Request, conn: Conn, session: OptionalSession) -> JSONResponse:
    """End the caller's session, if any, and expire the login cookies."""
    if session is not None:
        await revoke_session(conn, session.id)
        await conn.commit()
    response = status_ok()
    clear_session_cookies(request, response)
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
    validate_password(body.password)
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


async def set_active(conn: AsyncConnection, user_id: str, active: bool) -> None:
    """Reactivate, or deactivate and end the login sessions of, ``user_id``; commits, then closes their
    WebSocket connections when deactivating. 404 if there is no such user."""
    now = now_ms()
    delete_at = 0 if active else func.coalesce(func.nullif(users.c.delete_at, 0), now)
    stmt = update(users).where(users.c.id == user_id).values(delete_at=delete_at, update_at=now).returning(users.c.id)
    if (await conn.execute(stmt)).first() is None:
        raise user_not_found()
    if not active:
        await revoke_user_sessions(conn, user_id)
    await conn.commit()
    if not active:
        await events.disconnect_user(user_id)


@router.delete("/{user_id}")
async def deactivate_user(user_id: str, conn: Conn, session: CurrentSession) -> JSONResponse:
    """Deactivate an account and end its sessions (system admins only, as by default in Mattermost)."""
    target = resolve_user_id(user_id, session)
    if not session.is_system_admin:
        raise permission_error()
    await set_active(conn, target, False)
    return status_ok()


class ActiveBody(BaseModel):
    """``PUT /users/{user_id}/active``."""

    active: bool


@router.put("/{user_id}/active")
async def update_active(user_id: str, body: ActiveBody, conn: Conn, session: CurrentSession) -> JSONResponse:
    """Deactivate or reactivate an account (system admins only: Mattermost's EnableUserDeactivation is off)."""
    target = resolve_user_id(user_id, session)
    if not session.is_system_admin:
        raise permission_error()
    await set_active(conn, target, body.active)
    return status_ok()


# The system roles an account may hold (Mattermost's built-in ones that this server knows).
ASSIGNABLE_ROLES = frozenset({"system_user", "system_admin", "system_user_access_token", "system_post_all"})


class RolesBody(BaseModel):
    """``PUT /users/{user_id}/roles``, and the team and channel member ``.../members/{user_id}/roles``."""

    roles: str


@router.put("/{user_id}/roles")
async def update_roles(user_id: str, body: RolesBody, conn: Conn, session: CurrentSession) -> JSONResponse:
    """Replace a user's system roles (system admins only); ``system_user`` is always one of them."""
    target = resolve_user_id(user_id, session)
    if not session.is_system_admin:
        raise permission_error()
    roles = body.roles.split()
    if not roles or "system_user" not in roles or not set(roles) <= ASSIGNABLE_ROLES:
        raise invalid_body_param("roles")
    stmt = (
        update(users)
        .where(users.c.id == target)
        .values(roles=" ".join(dict.fromkeys(roles)), update_at=now_ms())
        .returning(users.c.id)
    )
    if (await conn.execute(stmt)).first() is None:
        raise user_not_found()
    await conn.commit()
    return status_ok()


class PasswordBody(BaseModel):
    """``PUT /users/{user_id}/password``."""

    current_password: str = ""
    new_password: str


def validate_password(password: str) -> None:
    """400 unless ``password`` has an acceptable length."""
    if not PASSWORD_MIN_LENGTH <= len(password) <= PASSWORD_MAX_LENGTH:
        raise AppError(
            400,
            "model.user.is_valid.pwd_length.app_error",
            f"Your password must contain between {PASSWORD_MIN_LENGTH} and {PASSWORD_MAX_LENGTH} characters.",
        )


@router.put("/{user_id}/password")
async def update_password(user_id: str, body: PasswordBody, conn: Conn, session: CurrentSession) -> JSONResponse:
    """Change a password: users change their own with the current one, system admins anyone's. The user's other
    login sessions end (Mattermost's TerminateSessionsOnPasswordChange)."""
    target = resolve_user_id(user_id, session)
    is_self = target == session.user_id
    if not is_self and not session.is_system_admin:
        raise permission_error()
    user = await get_user(conn, target)
    if user is None:
        raise user_not_found()
    if user["is_bot"]:
        raise AppError(400, "api.user.update_password.bot.app_error", "A bot account has no password.")
    if is_self and not await verify_password(user["password"], body.current_password):
        raise AppError(400, "api.user.update_password.incorrect.app_error", "The current password is incorrect.")
    validate_password(body.new_password)
    now = now_ms()
    new_hash = await hash_password(body.new_password)
    await conn.execute(
        update(users).where(users.c.id == target).values(password=new_hash, last_password_update=now, update_at=now)
    )
    await revoke_user_sessions(conn, target, keep_session_id=session.id if is_self else "")
    await conn.commit()
    return status_ok()


class UserPatchBody(BaseModel):
    """``PUT /users/{user_id}/patch`` (and ``PUT /users/{user_id}``): the fields to change."""

    username: str | None = None
    email: str | None = None
    password: str | None = None
    nickname: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    position: str | None = None
    locale: str | None = None
    props: dict[str, str] | None = None
    notify_props: dict[str, str] | None = None
    timezone: dict[str, str] | None = None


_PROFILE_LIMITS = {"nickname": 64, "first_name": 64, "last_name": 64, "position": 128, "locale": 5}


async def _patch_user(user_id: str, body: UserPatchBody, conn: AsyncConnection, session: Session) -> JSONResponse:
    target = resolve_user_id(user_id, session)
    if target != session.user_id and not session.is_system_admin:
        raise permission_error()
    user = await get_user(conn, target)
    if user is None:
        raise user_not_found()
    values: dict[str, Any] = {}
    for field, limit in _PROFILE_LIMITS.items():
        value = getattr(body, field)
        if value is not None:
            if len(value) > limit:
                raise invalid_body_param(field)
            values[field] = value
    for field in ("props", "notify_props", "timezone"):
        if getattr(body, field) is not None:
            values[field] = getattr(body, field)
    if body.username is not None and body.username.lower() != user["username"]:
        values["username"] = validate_username(body.username)
    if body.email is not None and body.email.strip().lower() != user["email"]:
        # Moving an account to another address needs its password, unless an admin does it.
        if not session.is_system_admin and not await verify_password(user["password"], body.password or ""):
            raise AppError(
                400, "api.user.check_user_password.invalid.app_error", "Login failed because of invalid password."
            )
        values["email"] = validate_email(body.email)
        values["email_verified"] = session.is_system_admin and user["email_verified"]
    if not values:
        return JSONResponse(user_json_for(session, user))
    stmt = update(users).where(users.c.id == target).values({**values, "update_at": now_ms()}).returning(users)
    try:
        updated = (await conn.execute(stmt)).mappings().one()
    except IntegrityError:
        await conn.rollback()
        if "email" in values and await get_user_by_email(conn, values["email"]) is not None:
            raise AppError(
                400, "app.user.save.email_exists.app_error", "An account with that email already exists."
            ) from None
        raise AppError(
            400, "app.user.save.username_exists.app_error", "An account with that username already exists."
        ) from None
    await conn.commit()
    return JSONResponse(user_json_for(session, updated))


@router.put("/{user_id}/patch")
async def patch_user(user_id: str, body: UserPatchBody, conn: Conn, session: CurrentSession) -> JSONResponse:
    """Change some of a user's profile fields (the user themselves or a system admin)."""
    return await _patch_user(user_id, body, conn, session)


@router.put("/{user_id}")
async def update_user(user_id: str, body: UserPatchBody, conn: Conn, session: CurrentSession) -> JSONResponse:
    """Mattermost's full update; like the patch, fields left out keep their values."""
    return await _patch_user(user_id, body, conn, session)
