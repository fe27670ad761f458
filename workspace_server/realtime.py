"""Read state: counting a new post on its channel and members (mentions included), the ``posted`` event,
viewing a channel, and the unread and mention counts (``/channels/members/{user_id}/view``,
``/users/{user_id}/channels/{channel_id}/unread``, ``/users/{user_id}/teams/unread``,
``/users/{user_id}/teams/{team_id}/unread``).

A member's unread messages are ``channels.total_msg_count - channel_members.msg_count`` (``msg_count`` is the
channel's total when the member last viewed it); ``mention_count`` counts the posts that mentioned them since.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import RowMapping, and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from workspace_server.auth import CurrentSession, Session
from workspace_server.db import Conn
from workspace_server.events import Broadcast, defer, dumps, flush
from workspace_server.ids import is_valid_id, now_ms
from workspace_server.membership import DEFAULT_CHANNEL_NOTIFY_PROPS, get_team_member
from workspace_server.schema import channel_members, channels, team_members
from workspace_server.web import AppError, JSONResponse, invalid_body_param, invalid_url_param, permission_error

router = APIRouter(prefix="/api/v4")

# Posts in these channel types mention every other member (Mattermost's DM and GM mentions).
_ALWAYS_MENTION_TYPES: Final = ("D", "G")
_CHANNEL_WIDE: Final = frozenset({"channel", "all", "here"})
_CODE_BLOCK = re.compile(r"```.*?(?:```|$)", re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_MENTION = re.compile(r"(?<![\w@])@([a-z0-9][a-z0-9._-]*)", re.IGNORECASE)
_USERNAME_MAX = 22
_ZERO_KEYS: Final = ("msg_count", "mention_count", "mention_count_root", "msg_count_root")


def parse_mentions(message: str) -> tuple[list[str], bool]:
    """The usernames ``message`` mentions (outside code) and whether it mentions the whole channel
    (``@channel``, ``@all``, ``@here``). Trailing punctuation is tried both kept and stripped, as usernames may
    contain ``.``, ``-`` and ``_``."""
    if "@" not in message:
        return [], False
    if "`" in message:
        message = _INLINE_CODE.sub(" ", _CODE_BLOCK.sub(" ", message))
    names: set[str] = set()
    channel_wide = False
    for match in _MENTION.finditer(message):
        name = match.group(1).lower()
        for candidate in (name, name.rstrip("._-")):
            if candidate in _CHANNEL_WIDE:
                channel_wide = True
            elif 0 < len(candidate) <= _USERNAME_MAX:
                names.add(candidate)
    return sorted(names), channel_wide


@dataclass(frozen=True, slots=True)
class PostedContext:
    """What counting a post learnt: its channel, its author's name, and who it mentioned."""

    team_id: str
    channel_type: str
    channel_name: str
    channel_display_name: str
    sender_name: str
    mentions: list[str]


def posted_context(row: RowMapping | Mapping[str, Any]) -> PostedContext:
    """What writing a post learnt of its channel, author and mentions (see :mod:`post_writer`)."""
    return PostedContext(
        team_id=row["channel_team_id"] if row["channel_type"] not in _ALWAYS_MENTION_TYPES else "",
        channel_type=row["channel_type"],
        channel_name=row["channel_name"],
        channel_display_name=row["channel_display_name"],
        sender_name=row["sender_name"] or "",
        mentions=list(row["mentions"]),
    )


def posted_data(post: dict[str, Any], context: PostedContext, encoded: str = "") -> dict[str, Any]:
    """The data of Mattermost's ``posted`` event for ``post`` (``encoded``: its JSON, when the caller has it)."""
    sender_name = post.get("props", {}).get("override_username") or context.sender_name
    body: dict[str, Any] = {
        "channel_display_name": context.channel_display_name,
        "channel_name": context.channel_name,
        "channel_type": context.channel_type,
        "post": encoded or dumps(post),
        "sender_name": f"@{sender_name}",
        "set_online": True,
        "team_id": context.team_id,
    }
    if context.mentions:
        body["mentions"] = json.dumps(context.mentions)
    return body


def defer_posted(conn: AsyncConnection, post: dict[str, Any], context: PostedContext) -> None:
    """Queue Mattermost's ``posted`` event for ``post`` on ``conn``'s transaction. The post is serialised when the
    event is published, so a route may still complete it (``pending_post_id``) after the insert."""
    defer(conn, "posted", lambda: posted_data(post, context), Broadcast(channel_id=post["channel_id"]))


# --- viewing and unread counts ---------------------------------------------------------------------------------


class ViewBody(BaseModel):
    """``POST /channels/members/{user_id}/view``."""

    channel_id: str = ""
    prev_channel_id: str = ""
    collapsed_threads_supported: bool = False


def _own_user_id(user_id: str, session: Session) -> str:
    """``user_id`` (``me`` for the caller), which must be the caller's unless they are a system admin."""
    target = session.user_id if user_id == "me" else user_id
    if not is_valid_id(target):
        raise invalid_url_param("user_id")
    if target != session.user_id and not session.is_system_admin:
        raise permission_error()
    return target


@router.post("/channels/members/{user_id}/view")
async def view_channel(user_id: str, body: ViewBody, conn: Conn, session: CurrentSession) -> JSONResponse:
    """Mark ``channel_id`` (and ``prev_channel_id``, the channel the client leaves) read for the user: the
    member's ``msg_count`` catches up with the channel, its ``mention_count`` drops to 0. Sends
    ``channel_viewed`` to the user's connections."""
    target = _own_user_id(user_id, session)
    ids = [c for c in dict.fromkeys((body.channel_id, body.prev_channel_id)) if c]
    if body.channel_id and not is_valid_id(body.channel_id):
        raise invalid_body_param("channel_id")
    if body.prev_channel_id and not is_valid_id(body.prev_channel_id):
        raise invalid_body_param("prev_channel_id")
    times: dict[str, int] = {}
    if ids:
        now = now_ms()
        stmt = (
            update(channel_members)
            .where(
                channel_members.c.user_id == target,
                channel_members.c.channel_id.in_(ids),
                channel_members.c.channel_id == channels.c.id,
            )
            .values(
                msg_count=channels.c.total_msg_count,
                msg_count_root=channels.c.total_msg_count_root,
                mention_count=0,
                mention_count_root=0,
                last_viewed_at=now,
                last_update_at=now,
            )
            .returning(channel_members.c.channel_id)
        )
        for channel_id in (await conn.execute(stmt)).scalars():
            times[channel_id] = now
            defer(conn, "channel_viewed", {"channel_id": channel_id}, Broadcast(user_id=target))
        await conn.commit()
        await flush(conn)
    return JSONResponse({"status": "OK", "last_viewed_at_times": times})


def _channel_unread_json(row: RowMapping) -> dict[str, Any]:
    return {
        "team_id": row["team_id"],
        "channel_id": row["channel_id"],
        "msg_count": max(row["total_msg_count"] - row["msg_count"], 0),
        "mention_count": row["mention_count"],
        "mention_count_root": row["mention_count_root"],
        "urgent_mention_count": 0,
        "msg_count_root": max(row["total_msg_count_root"] - row["msg_count_root"], 0),
        "notify_props": {**DEFAULT_CHANNEL_NOTIFY_PROPS, **row["notify_props"]},
    }


@router.get("/users/{user_id}/channels/{channel_id}/unread")
async def get_channel_unread(user_id: str, channel_id: str, conn: Conn, session: CurrentSession) -> JSONResponse:
    """The user's unread message and mention counts in a channel they belong to."""
    target = _own_user_id(user_id, session)
    if not is_valid_id(channel_id):
        raise invalid_url_param("channel_id")
    query = (
        select(
            channels.c.team_id,
            channels.c.type,
            channels.c.total_msg_count,
            channels.c.total_msg_count_root,
            channel_members,
        )
        .join(channels, channels.c.id == channel_members.c.channel_id)
        .where(channel_members.c.channel_id == channel_id, channel_members.c.user_id == target)
    )
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        raise AppError(
            404, "app.channel.get_member.missing.app_error", "No channel member found for that user ID and channel ID."
        )
    unread = _channel_unread_json(row)
    if row["type"] in _ALWAYS_MENTION_TYPES:
        unread["team_id"] = ""
    return JSONResponse(unread)


def _team_unreads_query(user_id: str) -> Any:
    """Per team: the sums of the user's unread messages and mentions over their channels in it."""
    unread = channels.c.total_msg_count - channel_members.c.msg_count
    unread_root = channels.c.total_msg_count_root - channel_members.c.msg_count_root
    return (
        select(
            channels.c.team_id,
            func.coalesce(func.sum(func.greatest(unread, 0)), 0).label("msg_count"),
            func.coalesce(func.sum(channel_members.c.mention_count), 0).label("mention_count"),
            func.coalesce(func.sum(channel_members.c.mention_count_root), 0).label("mention_count_root"),
            func.coalesce(func.sum(func.greatest(unread_root, 0)), 0).label("msg_count_root"),
        )
        .join(channels, channels.c.id == channel_members.c.channel_id)
        .where(
            channel_members.c.user_id == user_id,
            channels.c.delete_at == 0,
            channels.c.type.not_in(_ALWAYS_MENTION_TYPES),
        )
        .group_by(channels.c.team_id)
    )


def _team_unread_json(row: Mapping[str, Any] | RowMapping) -> dict[str, Any]:
    return {
        "team_id": row["team_id"],
        "msg_count": int(row["msg_count"]),
        "mention_count": int(row["mention_count"]),
        "mention_count_root": int(row["mention_count_root"]),
        "msg_count_root": int(row["msg_count_root"]),
        "thread_count": 0,
        "thread_mention_count": 0,
        "thread_urgent_mention_count": 0,
    }


@router.get("/users/{user_id}/teams/unread")
async def get_teams_unread(
    user_id: str, conn: Conn, session: CurrentSession, exclude_team: str = "", include_collapsed_threads: bool = False
) -> JSONResponse:
    """The user's unread counts for each of their teams (except ``exclude_team``)."""
    target = _own_user_id(user_id, session)
    query = _team_unreads_query(target).join(
        team_members,
        and_(
            team_members.c.team_id == channels.c.team_id,
            team_members.c.user_id == target,
            team_members.c.delete_at == 0,
        ),
    )
    if exclude_team:
        query = query.where(channels.c.team_id != exclude_team)
    rows = (await conn.execute(query)).mappings()
    return JSONResponse([_team_unread_json(r) for r in rows])


@router.get("/users/{user_id}/teams/{team_id}/unread")
async def get_team_unread(user_id: str, team_id: str, conn: Conn, session: CurrentSession) -> JSONResponse:
    """The user's unread counts in one team."""
    target = _own_user_id(user_id, session)
    if not is_valid_id(team_id):
        raise invalid_url_param("team_id")
    if await get_team_member(conn, team_id, target) is None:
        raise AppError(
            404, "app.team.get_member.missing.app_error", "No team member found for that user ID and team ID."
        )
    row = (await conn.execute(_team_unreads_query(target).where(channels.c.team_id == team_id))).mappings().first()
    if row is None:
        return JSONResponse(_team_unread_json({"team_id": team_id} | dict.fromkeys(_ZERO_KEYS, 0)))
    return JSONResponse(_team_unread_json(row))
