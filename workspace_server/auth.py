"""Passwords, sessions and the dependencies that authenticate a request."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from starlette.responses import Response

from workspace_server import session_cache
from workspace_server.db import Conn
from workspace_server.ids import new_id, now_ms
from workspace_server.schema import sessions, users
from workspace_server.web import session_expired

if TYPE_CHECKING:
    from argon2 import PasswordHasher

SESSION_LENGTH_MS = 30 * 24 * 3600 * 1000
TOKEN_COOKIE = "MMAUTHTOKEN"
USER_ID_COOKIE = "MMUSERID"
CSRF_COOKIE = "MMCSRF"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# A path prefix fit for a cookie's Path: segments of URL-safe characters, none starting with a dot.
_PUBLIC_PREFIX = re.compile(r"(/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)+")


@functools.cache
def _hasher() -> PasswordHasher:
    # Imported on the first login or password change, not at start (memory and start time).
    from argon2 import PasswordHasher

    return PasswordHasher()


def is_argon2_hash(value: str) -> bool:
    """Whether ``value`` is an argon2 hash in the standard PHC encoding (``$argon2id$...``)."""
    return value.startswith(("$argon2id$", "$argon2i$", "$argon2d$"))


async def hash_password(password: str) -> str:
    """An argon2id hash of ``password``, computed off the event loop."""
    return await asyncio.to_thread(_hasher().hash, password)


@functools.cache
def _decoy_hash() -> str:
    return _hasher().hash(new_id())


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``password_hash``; with no hash, spends the same time and fails."""

    def verify() -> bool:
        from argon2.exceptions import InvalidHashError, VerificationError

        try:
            return _hasher().verify(password_hash or _decoy_hash(), password) and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Session:
    """The authenticated caller of a request."""

    id: str
    user_id: str
    roles: str
    is_bot: bool = False

    @property
    def is_system_admin(self) -> bool:
        """Whether the caller holds the ``system_admin`` role."""
        return "system_admin" in self.roles.split()


@dataclass(frozen=True, slots=True)
class NewSession:
    """A session just created: the bearer token and CSRF token exist only here, the database keeps a hash."""

    token: str
    csrf_token: str
    expires_at: int


async def create_session(conn: AsyncConnection, user_id: str) -> NewSession:
    """Store a new session for ``user_id`` (the caller commits)."""
    now = now_ms()
    new = NewSession(token=new_id(), csrf_token=new_id(), expires_at=now + SESSION_LENGTH_MS)
    await conn.execute(
        insert(sessions).values(
            id=new_id(),
            token_hash=_token_hash(new.token),
            user_id=user_id,
            csrf_token=new.csrf_token,
            create_at=now,
            expires_at=new.expires_at,
        )
    )
    return new


async def revoke_session(conn: AsyncConnection, session_id: str) -> None:
    """Delete one session (the caller commits)."""
    await conn.execute(delete(sessions).where(sessions.c.id == session_id))


async def revoke_user_sessions(conn: AsyncConnection, user_id: str, *, keep_session_id: str = "") -> None:
    """Delete every login session of ``user_id`` but ``keep_session_id`` (the caller commits). The sessions of
    personal access tokens stay: they end with their token, and a deactivated user's are refused anyway."""
    await conn.execute(
        delete(sessions).where(
            sessions.c.user_id == user_id, sessions.c.access_token_id.is_(None), sessions.c.id != keep_session_id
        )
    )


# Sessions standing for personal access tokens do not expire: the token is revoked or disabled instead.
TOKEN_SESSION_EXPIRES_AT = 2**62


def token_hash(token: str) -> str:
    """The SHA-256 hex digest under which a bearer token is stored."""
    return _token_hash(token)


async def create_token_session(conn: AsyncConnection, user_id: str, access_token_id: str, hashed: str) -> None:
    """Store the session through which the personal access token with hash ``hashed`` authenticates (the caller
    commits)."""
    await conn.execute(
        insert(sessions).values(
            id=new_id(),
            token_hash=hashed,
            user_id=user_id,
            csrf_token=new_id(),
            create_at=now_ms(),
            expires_at=TOKEN_SESSION_EXPIRES_AT,
            access_token_id=access_token_id,
        )
    )


def cookie_path(request: Request) -> str:
    """The path the login cookies are scoped to: the public prefix a proxy strips before this server
    (``X-Forwarded-Prefix``, e.g. ``/w/acme``: cookies of one workspace never go to another's address), else ``/``."""
    prefix = request.headers.get("x-forwarded-prefix", "")
    return prefix if _PUBLIC_PREFIX.fullmatch(prefix) else "/"


def set_session_cookies(request: Request, response: Response, new: NewSession, user_id: str) -> None:
    """The cookies Mattermost sets at login: the token (HTTP-only), the user id and the CSRF token (Secure when the
    public URL is https, on the public prefix's path)."""
    max_age = SESSION_LENGTH_MS // 1000
    secure = request.app.state.settings.public_url.startswith("https://")
    path = cookie_path(request)
    for name, value, httponly in (
        (TOKEN_COOKIE, new.token, True),
        (USER_ID_COOKIE, user_id, False),
        (CSRF_COOKIE, new.csrf_token, False),
    ):
        response.set_cookie(name, value, max_age=max_age, path=path, secure=secure, httponly=httponly, samesite="lax")


def clear_session_cookies(request: Request, response: Response) -> None:
    """Expire the login cookies."""
    for name in (TOKEN_COOKIE, USER_ID_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, path=cookie_path(request))


def _csrf_ok(request: Request, csrf_token: str) -> bool:
    """Cookie-authenticated writes must prove they come from our client, as Mattermost requires."""
    if request.headers.get("x-requested-with") == "XMLHttpRequest":
        return True
    return hmac.compare_digest(request.headers.get("x-csrf-token", "").encode(), csrf_token.encode())


_SESSION_QUERY = (
    select(
        sessions.c.id, sessions.c.user_id, sessions.c.csrf_token, sessions.c.expires_at, users.c.roles, users.c.is_bot
    )
    .join(users, users.c.id == sessions.c.user_id)
    .where(
        sessions.c.token_hash == bindparam("token_hash"),
        sessions.c.expires_at > bindparam("now"),
        users.c.delete_at == 0,
    )
)


async def _token_session(conn: AsyncConnection, token: str) -> tuple[Session, str] | None:
    """The live session behind ``token`` and its CSRF token (from :mod:`session_cache` when it has them)."""
    hashed = _token_hash(token)
    now = now_ms()
    cached: tuple[Session, str] | None = session_cache.get(hashed, now)
    if cached is not None:
        return cached
    generation = session_cache.generation()
    row = (await conn.execute(_SESSION_QUERY, {"token_hash": hashed, "now": now})).first()
    if row is None:
        return None
    found = Session(id=row.id, user_id=row.user_id, roles=row.roles, is_bot=row.is_bot), row.csrf_token
    session_cache.put(hashed, found, row.expires_at, generation)
    return found


async def session_for_token(conn: AsyncConnection, token: str) -> Session | None:
    """The live session a bearer token stands for (the WebSocket's ``authentication_challenge`` uses it, and
    requests authenticated by header)."""
    found = await _token_session(conn, token)
    return found[0] if found is not None else None


async def session_for_bearer(engine: AsyncEngine, token: str) -> Session | None:
    """:func:`session_for_token`, taking a pooled connection only when the session is not cached."""
    cached: tuple[Session, str] | None = session_cache.get(_token_hash(token), now_ms())
    if cached is not None:
        return cached[0]
    async with engine.connect() as conn:
        return await session_for_token(conn, token)


def request_token(headers: Mapping[str, str], cookies: Mapping[str, str]) -> tuple[str, bool] | None:
    """The session token of a request or WebSocket upgrade, and whether it came from the cookie (header first,
    as Mattermost does)."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() in ("bearer", "token") and value.strip():
        return value.strip(), False
    cookie = cookies.get(TOKEN_COOKIE)
    return (cookie, True) if cookie else None


async def _optional_session(request: Request, conn: Conn) -> Session | None:
    found = request_token(request.headers, request.cookies)
    if found is None:
        return None
    token, from_cookie = found
    live = await _token_session(conn, token)
    if live is None:
        return None
    session, csrf_token = live
    if from_cookie and request.method not in _SAFE_METHODS and not _csrf_ok(request, csrf_token):
        return None
    return session


async def _required_session(session: Annotated[Session | None, Depends(_optional_session)]) -> Session:
    if session is None:
        raise session_expired()
    return session


OptionalSession = Annotated[Session | None, Depends(_optional_session)]
"""The caller's session if the request carries a valid one, else ``None``."""
CurrentSession = Annotated[Session, Depends(_required_session)]
"""The caller's session; 401 without one."""
