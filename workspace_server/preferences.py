"""User preferences (``/api/v4/users/{user_id}/preferences``), as Mattermost keeps them: ``(category, name) ->
value`` strings per user, read and written by the user (or a system admin), with the ``preferences_changed`` and
``preferences_deleted`` WebSocket events to the user's own connections.

Writes are validated as Mattermost's ``Preference.IsValid``: a category of 1 to 32 bytes, a name of at most 32
bytes, a value of at most 20,000 characters, a ``theme`` value that is a JSON object of strings (colours that are
not ``#rgb``/``#rrggbb`` become ``#ffffff``, as Mattermost's ``PreUpdate`` does), and a
``sidebar_settings``/``limit_visible_dms_gms`` between 1 and 40; a ``flagged_post`` names a post the caller may
read.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Final

from fastapi import APIRouter, Body, Path
from pydantic import BaseModel
from sqlalchemy import delete, exists, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from workspace_server.auth import CurrentSession, Session
from workspace_server.db import Conn
from workspace_server.events import Broadcast, defer, dumps
from workspace_server.ids import is_valid_id
from workspace_server.post_actions import readable_post
from workspace_server.schema import preferences, users
from workspace_server.users import resolve_user_id, user_not_found
from workspace_server.web import AppError, JSONResponse, invalid_body_param, permission_error, status_ok

router = APIRouter(prefix="/api/v4/users/{user_id}/preferences")

CATEGORY_MAX_BYTES: Final = 32
NAME_MAX_BYTES: Final = 32
VALUE_MAX_CHARS: Final = 20_000
PREFERENCES_PER_REQUEST_MAX: Final = 100
VISIBLE_DMS_GMS_MAX: Final = 40
FLAGGED_POST: Final = "flagged_post"
THEME: Final = "theme"
_PATH_WORD: Final = r"^[A-Za-z0-9_]+$"
_THEME_COLOUR = re.compile(r"^#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?$")
_THEME_FREE_KEYS: Final = frozenset({"image", "type", "codeTheme"})

PathWord = Annotated[str, Path(pattern=_PATH_WORD)]


class PreferenceBody(BaseModel):
    """One preference, as clients send it (missing fields are empty, as Go decodes them)."""

    user_id: str = ""
    category: str = ""
    name: str = ""
    value: str = ""


PreferenceList = Annotated[list[PreferenceBody], Body()]


def _invalid(field: str, message: str) -> AppError:
    return AppError(400, f"model.preference.is_valid.{field}.app_error", message)


def _theme(value: str) -> str:
    """A ``theme`` value with invalid colours blanked to white; 400 unless it is a JSON object of strings."""
    try:
        theme = json.loads(value)
    except ValueError:
        theme = None
    if not isinstance(theme, dict) or not all(isinstance(v, str) for v in theme.values()):
        raise _invalid("theme", "Invalid theme.")
    cleaned = {k: v if k in _THEME_FREE_KEYS or _THEME_COLOUR.match(v) else "#ffffff" for k, v in theme.items()}
    return dumps(cleaned)


def _visible_dms_gms_ok(value: str) -> bool:
    return value.isascii() and value.isdigit() and 1 <= int(value) <= VISIBLE_DMS_GMS_MAX


def validated(pref: PreferenceBody) -> PreferenceBody:
    """``pref`` as it is stored (theme colours cleaned), or a 400 naming what Mattermost would refuse."""
    if not pref.category or len(pref.category.encode()) > CATEGORY_MAX_BYTES:
        raise _invalid("category", "Invalid category.")
    if len(pref.name.encode()) > NAME_MAX_BYTES:
        raise _invalid("name", "Invalid name.")
    if len(pref.value) > VALUE_MAX_CHARS:
        raise _invalid("value", "Value is too long.")
    if "\x00" in pref.category + pref.name + pref.value:
        raise invalid_body_param("preferences")
    if pref.category == THEME:
        return pref.model_copy(update={"value": _theme(pref.value)})
    limits_visible = pref.category == "sidebar_settings" and pref.name == "limit_visible_dms_gms"
    if limits_visible and not _visible_dms_gms_ok(pref.value):
        raise _invalid("limit_visible_dms_gms", "Invalid number of visible direct and group messages.")
    return pref


def preference_json(row: Any) -> dict[str, str]:
    """Mattermost's ``Preference`` JSON."""
    return {"user_id": row["user_id"], "category": row["category"], "name": row["name"], "value": row["value"]}


async def _target_user(conn: AsyncConnection, user_id: str, session: Session, *, writing: bool = False) -> str:
    """The user whose preferences the path names (``me`` for the caller): only the caller's own, unless a system
    admin asks, for whom a user that does not exist is a 404 when writing."""
    target = resolve_user_id(user_id, session)
    if target == session.user_id:
        return target
    if not session.is_system_admin:
        raise permission_error()
    if writing and not await conn.scalar(select(exists().where(users.c.id == target))):
        raise user_not_found()
    return target


def _checked_list(prefs: list[PreferenceBody], target: str, forbidden_id: str) -> None:
    """At most :data:`PREFERENCES_PER_REQUEST_MAX` preferences, all of ``target`` (403 ``forbidden_id``
    otherwise, as Mattermost)."""
    if len(prefs) > PREFERENCES_PER_REQUEST_MAX:
        raise invalid_body_param("preferences")
    if any(p.user_id != target for p in prefs):
        raise AppError(403, forbidden_id, "Unable to change the preferences of another user.")


async def _check_flagged_posts(conn: AsyncConnection, session: Session, prefs: list[PreferenceBody]) -> None:
    for pref in prefs:
        if pref.category == FLAGGED_POST:
            if not is_valid_id(pref.name):
                raise invalid_body_param("preference.name")
            try:
                await readable_post(conn, session, pref.name)
            except AppError as error:
                # As Mattermost: a post that does not exist is a bad name, one the caller may not read a 403.
                if error.status_code == 404:
                    raise invalid_body_param("preference.name") from None
                raise


@router.get("")
async def get_preferences(user_id: str, conn: Conn, session: CurrentSession) -> JSONResponse:
    """All of the user's preferences."""
    target = await _target_user(conn, user_id, session)
    query = select(preferences).where(preferences.c.user_id == target)
    query = query.order_by(preferences.c.category, preferences.c.name)
    return JSONResponse([preference_json(r) for r in (await conn.execute(query)).mappings()])


@router.put("")
async def update_preferences(user_id: str, body: PreferenceList, conn: Conn, session: CurrentSession) -> JSONResponse:
    """Create or replace the given preferences; ``preferences_changed`` to the user's connections."""
    target = await _target_user(conn, user_id, session, writing=True)
    _checked_list(body, target, "api.preference.update_preferences.set.app_error")
    await _check_flagged_posts(conn, session, body)
    # The last of duplicates wins, as with Mattermost's one upsert per preference.
    stored = list({(p.category, p.name): validated(p) for p in body}.values())
    if stored:
        statement = insert(preferences).values([p.model_dump() for p in stored])
        statement = statement.on_conflict_do_update(
            index_elements=[preferences.c.user_id, preferences.c.category, preferences.c.name],
            set_={"value": statement.excluded.value},
        )
        await conn.execute(statement)
        data = {"preferences": dumps([p.model_dump() for p in stored])}
        defer(conn, "preferences_changed", data, Broadcast(user_id=target))
        await conn.commit()
    return status_ok()


@router.post("/delete")
async def delete_preferences(user_id: str, body: PreferenceList, conn: Conn, session: CurrentSession) -> JSONResponse:
    """Delete the given preferences (by category and name); ``preferences_deleted`` to the user's connections."""
    target = await _target_user(conn, user_id, session, writing=True)
    _checked_list(body, target, "api.preference.delete_preferences.delete.app_error")
    if any("\x00" in p.category + p.name + p.value for p in body):
        raise invalid_body_param("preferences")
    if body:
        keys = [(p.category, p.name) for p in body]
        await conn.execute(
            delete(preferences).where(
                preferences.c.user_id == target, tuple_(preferences.c.category, preferences.c.name).in_(keys)
            )
        )
        data = {"preferences": dumps([p.model_dump() for p in body])}
        defer(conn, "preferences_deleted", data, Broadcast(user_id=target))
        await conn.commit()
    return status_ok()


@router.get("/{category}")
async def get_preferences_by_category(
    user_id: str, category: PathWord, conn: Conn, session: CurrentSession
) -> JSONResponse:
    """The user's preferences in ``category``; 404 if there are none."""
    target = await _target_user(conn, user_id, session)
    query = (
        select(preferences)
        .where(preferences.c.user_id == target, preferences.c.category == category)
        .order_by(preferences.c.name)
    )
    rows = (await conn.execute(query)).mappings().all()
    if not rows:
        raise AppError(
            404, "api.preference.preferences_category.get.app_error", "Unable to find preferences for this category."
        )
    return JSONResponse([preference_json(r) for r in rows])


@router.get("/{category}/name/{name}")
async def get_preference(
    user_id: str, category: PathWord, name: PathWord, conn: Conn, session: CurrentSession
) -> JSONResponse:
    """One preference of the user (400 if unset: Mattermost answers so)."""
    target = await _target_user(conn, user_id, session)
    query = select(preferences).where(
        preferences.c.user_id == target, preferences.c.category == category, preferences.c.name == name
    )
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        raise AppError(400, "app.preference.get.app_error", "Unable to find the preference.")
    return JSONResponse(preference_json(row))
