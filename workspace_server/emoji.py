"""Custom emoji (``/api/v4/emoji``): this server has none yet, so lists are empty and look-ups by name find
nothing, with Mattermost's validation and error bodies."""

from __future__ import annotations

import re
from typing import Annotated, Final

from fastapi import APIRouter, Body

from workspace_server.auth import CurrentSession
from workspace_server.web import AppError, JSONResponse, PageQuery, PerPageQuery, invalid_body_param, invalid_url_param

router = APIRouter(prefix="/api/v4/emoji")

EMOJI_NAME: Final = re.compile(r"^[a-zA-Z0-9+_-]{1,64}$")
NAMES_PER_REQUEST_MAX: Final = 200
_SORTS: Final = frozenset({"", "name"})


@router.get("")
async def get_custom_emojis(
    session: CurrentSession,
    page: PageQuery = 0,
    per_page: PerPageQuery = 60,
    sort: str = "",
) -> JSONResponse:
    """A page of the workspace's custom emoji (none)."""
    if sort not in _SORTS:
        raise invalid_url_param("sort")
    return JSONResponse([])


@router.get("/name/{emoji_name}")
async def get_custom_emoji_by_name(emoji_name: str, session: CurrentSession) -> JSONResponse:
    """The custom emoji called ``emoji_name``: 404, there are none."""
    if not EMOJI_NAME.match(emoji_name):
        raise invalid_url_param("emoji_name")
    raise AppError(404, "app.emoji.get_by_name.no_result", "Unable to find the emoji.")


@router.post("/names")
async def get_custom_emojis_by_names(names: Annotated[list[str], Body()], session: CurrentSession) -> JSONResponse:
    """The custom emoji with the given names that exist (none)."""
    if not names:
        raise invalid_body_param("names")
    if len(names) > NAMES_PER_REQUEST_MAX:
        raise AppError(
            400,
            "api.emoji.get_multiple_by_name.too_many_names.app_error",
            f"Unable to get more than {NAMES_PER_REQUEST_MAX} emojis by name.",
        )
    return JSONResponse([])
