"""Incoming webhooks: managed under ``/api/v4/hooks/incoming``, executed at ``/hooks/{hook_id}`` (public: the
hook id is the secret) with a JSON body or a ``payload=`` form field, posting as the hook's creator."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel
from sqlalchemy import RowMapping, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.responses import PlainTextResponse

from workspace_server.auth import CurrentSession, Session
from workspace_server.channels import (
    DIRECT,
    GROUP,
    ChannelAccess,
    channel_access,
    channel_not_found,
    direct_channel_name,
    get_or_create_teamless,
)
from workspace_server.db import Conn
from workspace_server.events import flush
from workspace_server.ids import is_valid_id, new_id, now_ms
from workspace_server.membership import manages_team
from workspace_server.posts import _RESERVED_PROPS, MESSAGE_MAX_RUNES, insert_post
from workspace_server.schema import channels, incoming_webhooks, users
from workspace_server.settings import Settings
from workspace_server.web import (
    AppError,
    JSONResponse,
    PageQuery,
    PerPageQuery,
    carries_nul,
    invalid_body_param,
    invalid_url_param,
    permission_error,
    refuse_nul,
    status_ok,
)

router = APIRouter()

PER_PAGE_MAX = 200
PAYLOAD_MAX_BYTES = 1024 * 1024
_LIMITS = {"display_name": 64, "description": 500, "username": 255, "icon_url": 1024}


def hook_json(hook: RowMapping) -> dict[str, Any]:
    """A hook in Mattermost's ``IncomingWebhook`` shape."""
    return {
        "id": hook["id"],
        "create_at": hook["create_at"],
        "update_at": hook["update_at"],
        "delete_at": hook["delete_at"],
        "user_id": hook["user_id"],
        "channel_id": hook["channel_id"],
        "team_id": hook["team_id"],
        "display_name": hook["display_name"],
        "description": hook["description"],
        "username": hook["username"],
        "icon_url": hook["icon_url"],
        "channel_locked": hook["channel_locked"],
    }


def hook_not_found() -> AppError:
    """404 for a hook id that matches nothing the caller may manage."""
    return AppError(404, "app.webhooks.get_incoming.app_error", "Unable to get the webhook.")


async def _hook_channel(conn: AsyncConnection, session: Session, channel_id: str) -> ChannelAccess:
    """A team channel (open or private) the caller may post in and whose team they manage (Mattermost gives
    ``manage_incoming_webhooks`` to team and system admins)."""
    if not is_valid_id(channel_id):
        raise invalid_body_param("channel_id")
    access = await channel_access(conn, session, channels.c.id == channel_id, channels.c.delete_at == 0)
    if access is None or access.channel["type"] in (DIRECT, GROUP):
        raise channel_not_found()
    if not access.can_post or not await manages_team(conn, session, access.channel["team_id"]):
        raise permission_error()
    return access


async def _managed_hook(conn: AsyncConnection, session: Session, hook_id: str) -> RowMapping:
    if not is_valid_id(hook_id):
        raise invalid_url_param("hook_id")
    query = select(incoming_webhooks).where(incoming_webhooks.c.id == hook_id, incoming_webhooks.c.delete_at == 0)
    hook = (await conn.execute(query)).mappings().first()
    if hook is None:
        raise hook_not_found()
    if hook["user_id"] != session.user_id and not await manages_team(conn, session, hook["team_id"]):
        raise hook_not_found()
    return hook


def _check_lengths(values: dict[str, Any]) -> None:
    for name, limit in _LIMITS.items():
        if len(values.get(name) or "") > limit:
            raise invalid_body_param(name)


class HookBody(BaseModel):
    """``POST /hooks/incoming`` and ``PUT /hooks/incoming/{hook_id}``."""

    channel_id: str
    user_id: str = ""
    display_name: str = ""
    description: str = ""
    username: str = ""
    icon_url: str = ""
    channel_locked: bool = False
    id: str = ""


@router.post("/api/v4/hooks/incoming", status_code=201)
async def create_hook(body: HookBody, conn: Conn, session: CurrentSession) -> JSONResponse:
    """Create an incoming webhook for a channel (team and system admins who may post there); system admins may
    make someone else its owner with ``user_id``."""
    access = await _hook_channel(conn, session, body.channel_id)
    owner = session.user_id
    if body.user_id and body.user_id != session.user_id:
        if not session.is_system_admin:
            raise permission_error()
        if not is_valid_id(body.user_id):
            raise invalid_body_param("user_id")
        owner = body.user_id
    values = body.model_dump(exclude={"user_id", "id"})
    _check_lengths(values)
    now = now_ms()
    stmt = (
        insert(incoming_webhooks)
        .values(
            {**values, "id": new_id(), "create_at": now, "update_at": now}
            | {"user_id": owner, "team_id": access.channel["team_id"]}
        )
        .returning(incoming_webhooks)
    )
    hook = (await conn.execute(stmt)).mappings().one()
    await conn.commit()
    return JSONResponse(hook_json(hook), status_code=201)


@router.get("/api/v4/hooks/incoming")
async def list_hooks(
    conn: Conn,
    session: CurrentSession,
    page: PageQuery = 0,
    per_page: PerPageQuery = 60,
    team_id: str = "",
) -> JSONResponse:
    """A page of the hooks the caller manages: all of them for system admins, else their own."""
    per_page = min(per_page, PER_PAGE_MAX)
    query = select(incoming_webhooks).where(incoming_webhooks.c.delete_at == 0)
    if team_id:
        if not is_valid_id(team_id):
            raise invalid_url_param("team_id")
        query = query.where(incoming_webhooks.c.team_id == team_id)
    if not session.is_system_admin:
        query = query.where(incoming_webhooks.c.user_id == session.user_id)
    query = query.order_by(incoming_webhooks.c.create_at, incoming_webhooks.c.id).offset(page * per_page)
    return JSONResponse([hook_json(h) for h in (await conn.execute(query.limit(per_page))).mappings()])


@router.get("/api/v4/hooks/incoming/{hook_id}")
async def get_hook(hook_id: str, conn: Conn, session: CurrentSession) -> JSONResponse:
    """One hook (its owner, its team's admins, system admins)."""
    return JSONResponse(hook_json(await _managed_hook(conn, session, hook_id)))


@router.put("/api/v4/hooks/incoming/{hook_id}")
async def update_hook(hook_id: str, body: HookBody, conn: Conn, session: CurrentSession) -> JSONResponse:
    """Change a hook's channel (one the caller may post in, in the same team), names, icon or lock."""
    hook = await _managed_hook(conn, session, hook_id)
    if body.id and body.id != hook_id:
        raise invalid_body_param("id")
    if body.channel_id != hook["channel_id"]:
        access = await _hook_channel(conn, session, body.channel_id)
        if access.channel["team_id"] != hook["team_id"]:
            raise invalid_body_param("channel_id")
    values = body.model_dump(exclude={"user_id", "id"})
    _check_lengths(values)
    stmt = (
        update(incoming_webhooks)
        .where(incoming_webhooks.c.id == hook_id)
        .values({**values, "update_at": now_ms()})
        .returning(incoming_webhooks)
    )
    updated = (await conn.execute(stmt)).mappings().one()
    await conn.commit()
    return JSONResponse(hook_json(updated))


@router.delete("/api/v4/hooks/incoming/{hook_id}")
async def delete_hook(hook_id: str, conn: Conn, session: CurrentSession) -> JSONResponse:
    """Delete a hook: its URL stops working."""
    await _managed_hook(conn, session, hook_id)
    stmt = update(incoming_webhooks).where(incoming_webhooks.c.id == hook_id).values(delete_at=now_ms())
    await conn.execute(stmt)
    await conn.commit()
    return status_ok()


# --- execution ------------------------------------------------------------------------------------------------


def _invalid_payload() -> AppError:
    return AppError(400, "web.incoming_webhook.parse.app_error", "Unable to parse the incoming data.")


async def _payload(request: Request) -> dict[str, Any]:
    """The hook's JSON payload: the body itself, or its ``payload`` form field (urlencoded or multipart). The
    request middleware labels every non-multipart body JSON, so the form is recognised by its content."""
    if request.headers.get("content-type", "").startswith("multipart/"):
        form = await request.form(max_files=0, max_fields=10, max_part_size=PAYLOAD_MAX_BYTES)
        raw = form.get("payload")
        text = raw if isinstance(raw, str) else ""
    else:
        body = await request.body()
        if len(body) > PAYLOAD_MAX_BYTES:
            raise _invalid_payload()
        text = body.decode("utf-8", "replace")
        if not text.lstrip().startswith("{"):
            text = urllib.parse.parse_qs(text).get("payload", [""])[0]
    if carries_nul(text.encode()):
        raise refuse_nul(_invalid_payload())
    try:
        payload = json.loads(text)
    except ValueError:
        raise _invalid_payload() from None
    if not isinstance(payload, dict):
        raise _invalid_payload()
    return payload


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _channel_locked() -> AppError:
    return AppError(
        403,
        "web.incoming_webhook.channel_locked.app_error",
        "This webhook is not permitted to post to the requested channel.",
    )


async def _target_channel(conn: AsyncConnection, hook: RowMapping, creator: Session, override: str) -> str:
    """The channel to post in: the hook's, or the one the payload names (``town-square``, ``#name``, or
    ``@username`` for a direct message) if the hook is not locked to its channel; either way one the hook's
    creator may post in."""
    override = override.strip()
    access: ChannelAccess | None
    if override.startswith("@"):
        if hook["channel_locked"]:
            raise _channel_locked()
        query = select(users.c.id).where(users.c.username == override[1:].lower(), users.c.delete_at == 0)
        other: str | None = await conn.scalar(query)
        if other is None:
            raise AppError(400, "web.incoming_webhook.user.app_error", "Couldn't find the user.")
        members = [creator.user_id, other]
        name = direct_channel_name(creator.user_id, other)
        channel, _ = await get_or_create_teamless(conn, creator, DIRECT, name, "", members)
        access = await channel_access(conn, creator, channels.c.id == channel["id"])
    elif override:
        name = override.lstrip("#~").lower()
        access = await channel_access(conn, creator, channels.c.team_id == hook["team_id"], channels.c.name == name)
        if access is None:
            raise AppError(400, "web.incoming_webhook.channel.app_error", "Couldn't find the channel.")
        if hook["channel_locked"] and access.channel["id"] != hook["channel_id"]:
            raise _channel_locked()
    else:
        access = await channel_access(conn, creator, channels.c.id == hook["channel_id"])
    if access is None or not access.can_post or access.channel["delete_at"]:
        raise AppError(403, "web.incoming_webhook.permissions.app_error", "Inappropriate channel permissions.")
    channel_id: str = access.channel["id"]
    return channel_id


@router.post("/hooks/{hook_id}", response_model=None)
async def execute_hook(hook_id: str, request: Request, conn: Conn) -> PlainTextResponse:
    """Post a webhook's payload (``text``, optional ``channel``, ``username``, ``icon_url``, ``props``,
    ``attachments``) as the hook's creator; answers ``ok`` in plain text, as Mattermost does."""
    settings: Settings = request.app.state.settings
    hook = None
    if is_valid_id(hook_id):
        query = select(incoming_webhooks).where(incoming_webhooks.c.id == hook_id, incoming_webhooks.c.delete_at == 0)
        hook = (await conn.execute(query)).mappings().first()
    if hook is None:
        raise AppError(400, "web.incoming_webhook.invalid.app_error", "Invalid webhook.")
    payload = await _payload(request)
    text = _text(payload.get("text"))
    attachments = payload.get("attachments")
    if not text.strip() and not attachments:
        raise AppError(400, "web.incoming_webhook.text.app_error", "No text specified.")
    user = (await conn.execute(select(users).where(users.c.id == hook["user_id"]))).mappings().one()
    if user["delete_at"]:
        raise AppError(403, "web.incoming_webhook.user.app_error", "The webhook's creator is deactivated.")
    creator = Session(id="", user_id=user["id"], roles=user["roles"], is_bot=user["is_bot"])
    channel_id = await _target_channel(conn, hook, creator, _text(payload.get("channel")))
    extra = payload.get("props")
    props: dict[str, Any] = (
        {k: v for k, v in extra.items() if k not in _RESERVED_PROPS} if isinstance(extra, dict) else {}
    )
    props["from_webhook"] = "true"
    if isinstance(attachments, list):
        props["attachments"] = attachments
    if settings.enable_post_username_override:
        override = _text(payload.get("username")) or hook["username"]
        if override:
            props["override_username"] = override[:255]
    if settings.enable_post_icon_override:
        icon = _text(payload.get("icon_url")) or hook["icon_url"]
        if icon:
            props["override_icon_url"] = icon[:1024]
    # Long messages become several posts, as Mattermost splits them.
    chunks = [text[i : i + MESSAGE_MAX_RUNES] for i in range(0, len(text), MESSAGE_MAX_RUNES)] or [""]
    for chunk in chunks:
        await insert_post(conn, channel_id=channel_id, user_id=user["id"], message=chunk, root_id="", props=props)
    await conn.commit()
    await flush(conn)
    return PlainTextResponse("ok")
