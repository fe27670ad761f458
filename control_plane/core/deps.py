"""FastAPI dependencies: storable text, database session, authenticated principal, role grants, idempotency key."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session

from control_plane.core.authz import Permission, Principal
from control_plane.core.db import new_session
from control_plane.core.problems import InvalidInput, Unauthorized

UNSTORABLE = "must not contain NUL characters or unpaired surrogates"


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate such as "\ud800"
        return False
    return True


def _unstorable_field(value: Any, where: str) -> str | None:
    """The name of the first string in ``value`` (keys included) that PostgreSQL cannot store."""
    if isinstance(value, str):
        return None if _storable(value) else where
    if isinstance(value, dict):
        items: list[tuple[str, Any]] = [(f"{where}.{k}", part) for k, v in value.items() for part in (k, v)]
    elif isinstance(value, list):
        items = [(f"{where}.{i}", v) for i, v in enumerate(value)]
    else:
        return None
    return next((found for name, v in items if (found := _unstorable_field(v, name))), None)


async def _request_strings(request: Request) -> dict[str, Any]:
    """The path, the query parameters and a JSON or form body of ``request``, decoded."""
    strings: dict[str, Any] = {"path": request.url.path, "query": dict(request.query_params.multi_items())}
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/x-www-form-urlencoded"):
        strings["body"] = {k: v for k, v in (await request.form()).multi_items() if isinstance(v, str)}
    elif "json" in content_type:
        with contextlib.suppress(ValueError):  # not JSON: the route's own validation answers
            strings["body"] = json.loads(await request.body())
    return strings


RAW_BODY: dict[str, Any] = {"x-canopy-raw-body": True}
"""``openapi_extra`` of a route that takes its body as sent (a signed webhook): its body is not decoded here."""


async def refuse_unstorable_text(request: Request) -> None:
    """Refuse any request carrying text PostgreSQL cannot store (NUL, lone surrogates) with a 422 problem.

    Installed on the whole application, so that no route, parameter or body field can forget it. A route marked
    :data:`RAW_BODY` validates its own body (what it stores of it).
    """
    route = request.scope.get("route")
    strings = await _request_strings(request)
    if (getattr(route, "openapi_extra", None) or {}).get("x-canopy-raw-body"):
        strings.pop("body", None)
    field = next((found for name, v in strings.items() if (found := _unstorable_field(v, name))), None)
    if field is not None:
        raise InvalidInput(field.removeprefix("body.").removeprefix("query."), UNSTORABLE)


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


IDEMPOTENCY_KEY_MAX = 200


def idempotency_key(
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=IDEMPOTENCY_KEY_MAX,
            description="Repeating a create with the same key and body replays its first answer (keys are per caller).",
        ),
    ] = None,
) -> str | None:
    """The ``Idempotency-Key`` header (its length limits are validated and documented by FastAPI)."""
    return key


IdempotencyKey = Annotated[str | None, Depends(idempotency_key)]
