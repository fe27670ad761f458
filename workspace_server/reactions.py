"""Reactions (``/api/v4/reactions``, ``/api/v4/posts/{post_id}/reactions`` and
``/api/v4/users/{user_id}/posts/{post_id}/reactions/{emoji_name}``)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel
from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from workspace_server import events
from workspace_server.auth import CurrentSession, Session
from workspace_server.channels import channel_access
from workspace_server.db import Conn
from workspace_server.events import Broadcast
from workspace_server.ids import is_valid_id, now_ms
from workspace_server.plan import WritingSession
from workspace_server.post_actions import PostAccess, readable_post
from workspace_server.post_metadata import reaction_json
from workspace_server.schema import channels, posts, reactions
from workspace_server.users import resolve_user_id
from workspace_server.web import AppError, JSONResponse, invalid_body_param, permission_error, status_ok

router = APIRouter(prefix="/api/v4")

_EMOJI_NAME = re.compile(r"^[a-zA-Z0-9+_-]{1,64}$")
# Mattermost's ServiceSettings.UniqueEmojiReactionLimitPerPost default.
UNIQUE_EMOJI_PER_POST = 50
POSTS_BY_IDS_MAX = 200


def _reaction_data(reaction: dict[str, Any]) -> dict[str, Any]:
    return {"reaction": events.dumps(reaction)}


def _check_emoji(name: str) -> None:
    if not _EMOJI_NAME.match(name):
        raise AppError(400, "model.reaction.is_valid.emoji_name.app_error", "Invalid emoji name.")


async def _reactable_post(conn: AsyncConnection, session: Session, post_id: str) -> PostAccess:
    """The live post if the caller may react in its channel (its members; archived channels are read-only)."""
    found = await readable_post(conn, session, post_id)
    if not found.channel.can_post:
        raise permission_error()
    if found.channel.channel["delete_at"]:
        raise AppError(403, "api.reaction.save.archived_channel.app_error", "You cannot react in an archived channel.")
    return found


class ReactionBody(BaseModel):
    """``POST /reactions``."""

    user_id: str
    post_id: str
    emoji_name: str
    create_at: int = 0


@router.post("/reactions")
async def save_reaction(body: ReactionBody, conn: Conn, session: WritingSession) -> JSONResponse:
    """Add the caller's reaction to a post in a channel they are in (adding it again changes nothing)."""
    if body.user_id != session.user_id:
        raise permission_error()
    if not is_valid_id(body.post_id):
        raise invalid_body_param("post_id")
    _check_emoji(body.emoji_name)
    found = await _reactable_post(conn, session, body.post_id)
    now = now_ms()
    emoji_count = await conn.scalar(
        select(func.count(func.distinct(reactions.c.emoji_name))).where(reactions.c.post_id == body.post_id)
    )
    already_used = await conn.scalar(
        select(exists().where(reactions.c.post_id == body.post_id, reactions.c.emoji_name == body.emoji_name))
    )
    if not already_used and (emoji_count or 0) >= UNIQUE_EMOJI_PER_POST:
        raise AppError(
            400,
            "app.reaction.save.save.too_many_reactions",
            f"Reaction limit has been reached for this post: at most {UNIQUE_EMOJI_PER_POST} different emoji.",
        )
    values = {
        "post_id": body.post_id,
        "user_id": session.user_id,
        "emoji_name": body.emoji_name,
        "channel_id": found.post["channel_id"],
        "create_at": now,
        "update_at": now,
    }
    added = (
        (await conn.execute(insert(reactions).values(values).on_conflict_do_nothing().returning(reactions)))
        .mappings()
        .first()
    )
    if added is None:
        existing = select(reactions).where(
            reactions.c.post_id == body.post_id,
            reactions.c.user_id == session.user_id,
            reactions.c.emoji_name == body.emoji_name,
        )
        return JSONResponse(reaction_json((await conn.execute(existing)).mappings().one()))
    await conn.execute(update(posts).where(posts.c.id == body.post_id).values(has_reactions=True, update_at=now))
    await conn.commit()
    reaction = reaction_json(added)
    await events.publish("reaction_added", _reaction_data(reaction), Broadcast(channel_id=found.post["channel_id"]))
    return JSONResponse(reaction)


@router.get("/posts/{post_id}/reactions")
async def get_post_reactions(post_id: str, conn: Conn, session: CurrentSession) -> JSONResponse:
    """The reactions to a post the caller may read, oldest first."""
    found = await readable_post(conn, session, post_id)
    query = (
        select(reactions)
        .where(reactions.c.post_id == found.post["id"])
        .order_by(reactions.c.create_at, reactions.c.user_id, reactions.c.emoji_name)
    )
    return JSONResponse([reaction_json(r) for r in (await conn.execute(query)).mappings()])


@router.delete("/users/{user_id}/posts/{post_id}/reactions/{emoji_name}")
async def delete_reaction(
    user_id: str, post_id: str, emoji_name: str, conn: Conn, session: WritingSession
) -> JSONResponse:
    """Remove a reaction: the caller's own, or anyone's for system admins."""
    target = resolve_user_id(user_id, session)
    if target != session.user_id and not session.is_system_admin:
        raise permission_error()
    _check_emoji(emoji_name)
    found = await _reactable_post(conn, session, post_id)
    removed = (
        (
            await conn.execute(
                delete(reactions)
                .where(
                    reactions.c.post_id == post_id, reactions.c.user_id == target, reactions.c.emoji_name == emoji_name
                )
                .returning(reactions)
            )
        )
        .mappings()
        .first()
    )
    if removed is None:
        return status_ok()
    now = now_ms()
    still = exists().where(reactions.c.post_id == post_id)
    await conn.execute(update(posts).where(posts.c.id == post_id).values(has_reactions=still, update_at=now))
    await conn.commit()
    reaction = reaction_json(removed, delete_at=now)
    await events.publish("reaction_removed", _reaction_data(reaction), Broadcast(channel_id=found.post["channel_id"]))
    return status_ok()


@router.post("/posts/ids/reactions")
async def get_bulk_reactions(
    post_ids: Annotated[list[str], Body()], conn: Conn, session: CurrentSession
) -> JSONResponse:
    """The reactions to each of ``post_ids`` that the caller may read (an empty list for those without)."""
    if not post_ids or len(post_ids) > POSTS_BY_IDS_MAX or not all(map(is_valid_id, post_ids)):
        raise invalid_body_param("post_ids")
    rows = (
        await conn.execute(
            select(posts.c.id, posts.c.channel_id).where(posts.c.id.in_(set(post_ids)), posts.c.delete_at == 0)
        )
    ).all()
    readable: dict[str, bool] = {}
    for channel_id in {r.channel_id for r in rows}:
        access = await channel_access(conn, session, channels.c.id == channel_id)
        readable[channel_id] = access is not None and access.can_read
    visible = [r.id for r in rows if readable[r.channel_id]]
    answer: dict[str, list[dict[str, Any]]] = {post_id: [] for post_id in visible}
    if visible:
        query = select(reactions).where(reactions.c.post_id.in_(visible)).order_by(reactions.c.create_at)
        for reaction in (await conn.execute(query)).mappings():
            answer[reaction["post_id"]].append(reaction_json(reaction))
    return JSONResponse(answer)
