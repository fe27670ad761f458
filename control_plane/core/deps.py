"""FastAPI dependencies: database session, authenticated principal, role grants, idempotency key."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Header
from sqlalchemy.orm import Session

from control_plane.core.authz import Permission, Principal
from control_plane.core.db import new_session
from control_plane.core.problems import InvalidInput, Unauthorized


def db_session() -> Iterator[Session]:
    """A session per request; actions commit explicitly, anything left over is rolled back."""
    session = new_session()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


DbSession = Annotated[Session, Depends(db_session)]


def current_principal(session: DbSession, authorization: Annotated[str | None, Header()] = None) -> Principal:
    """The caller behind ``Authorization: Bearer <token>``."""
    from control_plane.tokens import service as tokens

    scheme, _, secret = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthorized()
    principal = tokens.resolve(session, secret.strip())
    session.commit()  # last_used_at
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def authorized(permission: Permission) -> Any:
    """A route dependency: the caller, once their role grants ``permission`` (403 otherwise).

    Each domain's ``auth.py`` names its actions with it, so a route's signature says who may call it.
    """

    def dependency(principal: CurrentPrincipal) -> Principal:
        principal.require(permission)
        return principal

    return Depends(dependency)


def idempotency_key(idempotency_key: Annotated[str | None, Header()] = None) -> str | None:
    """The ``Idempotency-Key`` header, validated."""
    if idempotency_key is not None and not (1 <= len(idempotency_key) <= 200):
        raise InvalidInput("Idempotency-Key", "must be 1 to 200 characters")
    return idempotency_key


IdempotencyKey = Annotated[str | None, Depends(idempotency_key)]
