"""Changing and reading posts beyond creation: edit and patch, delete, pin and unpin, threads, pinned posts and
posts by ids (``/api/v4/posts/...``, ``/api/v4/channels/{channel_id}/pinned``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel
from sqlalchemy import RowMapping, func, or_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from workspace_server import events
from workspace_server.auth import CurrentSession, Session
from workspace_server.channels import ChannelAccess, channel_access, readable_channel
from workspace_server.db import Conn
from workspace_server.events import Broadcast
from workspace_server.ids import is_valid_id, now_ms
from workspace_server.membership import manages_channel
from workspace_server.plan import WritingSession
from workspace_server.post_metadata import add_metadata
from workspace_server.posts import (
    _RESERVED_PROPS,
    MESSAGE_MAX_RUNES,
    PROPS_MAX_CHARS,
    _select_posts,
    parse_hashtags,
    post_json,
    post_list,
)
from workspace_server.schema import channels, file_infos, posts
from workspace_server.web import (
    AppError,
    JSONResponse,
    invalid_body_param,
    invalid_url_param,
    permission_error,
    status_ok,
)

router = APIRouter(prefix="/api/v4")

POSTS_BY_IDS_MAX = 1000
THREAD_MAX_POSTS = 10_000


def post_not_found() -> AppError:
    """404 for a post id that matches no live post."""
    return AppError(404, "app.post.get.app_error", "Unable to get the post.")


@dataclass(frozen=True, slots=True)
class PostAccess:
    """A live post and the caller's standing in its channel."""

    post: RowMapping
    channel: ChannelAccess
    is_author: bool


async def readable_post(conn: AsyncConnection, session: Session, post_id: str) -> PostAccess:
    """The live post ``post_id`` if the caller may read its channel: 404 if none, 403 if they may not."""
    if not is_valid_id(post_id):
        raise invalid_url_param("post_id")
    post = (await conn.execute(_select_posts().where(posts.c.id == post_id, posts.c.delete_at == 0))).mappings().first()
    if post is None:
        raise post_not_found()
    access = await channel_access(conn, session, channels.c.id == post["channel_id"])
    if access is None or not access.can_read:
        raise permission_error()
    return PostAccess(post, access, post["user_id"] == session.user_id)


async def _answer(conn: AsyncConnection, post: RowMapping) -> dict[str, Any]:
    body = post_json(post)
    await add_metadata(conn, [body])
    return body


async def _reload(conn: AsyncConnection, post_id: str) -> RowMapping:
    row: RowMapping = (await conn.execute(_select_posts().where(posts.c.id == post_id))).mappings().one()
    return row


# --- edit -----------------------------------------------------------------------------------------------------


class PostPatchBody(BaseModel):
    """``PUT /posts/{post_id}/patch``: the fields to change."""

    message: str | None = None
    is_pinned: bool | None = None
    props: dict[str, Any] | None = None


class PostUpdateBody(PostPatchBody):
    """``PUT /posts/{post_id}``: the post, with its id."""

    id: str


async def _edit(conn: AsyncConnection, session: Session, post_id: str, body: PostPatchBody) -> JSONResponse:
    found = await readable_post(conn, session, post_id)
    post = found.post
    # Authors edit their own posts in channels they may still post in; system admins edit anyone's.
    if not ((found.is_author and found.channel.can_post) or session.is_system_admin):
        raise permission_error()
    if post["type"].startswith("system_"):
        raise AppError(400, "api.post.update_post.system_message.app_error", "Unable to update system message.")
    if found.channel.channel["delete_at"]:
        raise AppError(
            400,
            "api.post.update_post.can_not_update_post_in_deleted.error",
            "Can not update a post in a deleted channel.",
        )
    now = now_ms()
    values: dict[str, Any] = {"update_at": now}
    if body.message is not None and body.message != post["message"]:
        if len(body.message) > MESSAGE_MAX_RUNES:
            raise AppError(400, "model.post.is_valid.msg.app_error", "Invalid message.")
        values |= {"message": body.message, "hashtags": parse_hashtags(body.message), "edit_at": now}
    if body.props is not None:
        # Integration props (from_webhook, override_username, ...) stay as they were, whatever the edit says.
        kept = {k: v for k, v in post["props"].items() if k in _RESERVED_PROPS}
        props = {k: v for k, v in body.props.items() if k not in _RESERVED_PROPS} | kept
        if len(json.dumps(props)) > PROPS_MAX_CHARS:
            raise AppError(400, "model.post.is_valid.props.app_error", "Invalid props.")
        values["props"] = props
    if body.is_pinned is not None:
        values["is_pinned"] = body.is_pinned
    await conn.execute(update(posts).where(posts.c.id == post["id"]).values(values))
    answer = await _answer(conn, await _reload(conn, post["id"]))
    await conn.commit()
    await events.publish("post_edited", {"post": events.dumps(answer)}, Broadcast(channel_id=post["channel_id"]))
    return JSONResponse(answer)


@router.put("/posts/{post_id}")
async def update_post(post_id: str, body: PostUpdateBody, conn: Conn, session: WritingSession) -> JSONResponse:
    """Edit a post (its author, or a system admin): a new message sets ``edit_at``."""
    if body.id != post_id:
        raise invalid_body_param("id")
    return await _edit(conn, session, post_id, body)


@router.put("/posts/{post_id}/patch")
async def patch_post(post_id: str, body: PostPatchBody, conn: Conn, session: WritingSession) -> JSONResponse:
    """Change some fields of a post (its author, or a system admin)."""
    return await _edit(conn, session, post_id, body)


# --- delete ---------------------------------------------------------------------------------------------------


@router.delete("/posts/{post_id}")
async def delete_post(post_id: str, conn: Conn, session: CurrentSession) -> JSONResponse:
    """Delete a post (softly: it keeps its row with ``delete_at`` set), and with a thread's root its replies, and
    the files of all of them. Authors delete their own posts; channel, team and system admins anyone's."""
    found = await readable_post(conn, session, post_id)
    post = found.post
    own = found.is_author and found.channel.can_post
    if not (own or await manages_channel(conn, session, found.channel.channel)):
        raise permission_error()
    now = now_ms()
    deleted = (
        update(posts)
        .where(or_(posts.c.id == post["id"], posts.c.root_id == post["id"]), posts.c.delete_at == 0)
        .values(delete_at=now, update_at=now)
        .returning(posts.c.id)
    )
    ids = list((await conn.execute(deleted)).scalars())
    await conn.execute(
        update(file_infos)
        .where(file_infos.c.post_id.in_(ids), file_infos.c.delete_at == 0)
        .values(delete_at=now, update_at=now)
    )
    if post["root_id"]:
        await conn.execute(
            update(posts)
            .where(posts.c.id == post["root_id"])
            .values(reply_count=func.greatest(posts.c.reply_count - 1, 0))
        )
    answer = post_json(await _reload(conn, post["id"]))
    await conn.commit()
    data = {"post": events.dumps(answer), "delete_by": session.user_id}
    await events.publish("post_deleted", data, Broadcast(channel_id=post["channel_id"]))
    return status_ok()


# --- pins -----------------------------------------------------------------------------------------------------


async def _set_pinned(conn: AsyncConnection, session: Session, post_id: str, pinned: bool) -> JSONResponse:
    found = await readable_post(conn, session, post_id)
    if not found.channel.can_post:
        raise permission_error()
    if found.channel.channel["delete_at"]:
        raise AppError(
            400, "api.post.pin_post.archived_channel.app_error", "Can not pin a post in an archived channel."
        )
    if found.post["is_pinned"] != pinned:
        stmt = update(posts).where(posts.c.id == post_id).values(is_pinned=pinned, update_at=now_ms())
        await conn.execute(stmt)
        answer = await _answer(conn, await _reload(conn, post_id))
        await conn.commit()
        await events.publish(
            "post_edited", {"post": events.dumps(answer)}, Broadcast(channel_id=found.post["channel_id"])
        )
    return status_ok()


@router.post("/posts/{post_id}/pin")
async def pin_post(post_id: str, conn: Conn, session: WritingSession) -> JSONResponse:
    """Pin a post to its channel (members of the channel)."""
    return await _set_pinned(conn, session, post_id, True)


@router.post("/posts/{post_id}/unpin")
async def unpin_post(post_id: str, conn: Conn, session: WritingSession) -> JSONResponse:
    """Unpin a post (members of the channel)."""
    return await _set_pinned(conn, session, post_id, False)


@router.get("/channels/{channel_id}/pinned")
async def get_pinned_posts(channel_id: str, conn: Conn, session: CurrentSession) -> JSONResponse:
    """The channel's pinned posts, newest first."""
    channel = await readable_channel(conn, channel_id, session)
    query = (
        _select_posts()
        .where(posts.c.channel_id == channel["id"], posts.c.is_pinned, posts.c.delete_at == 0)
        .order_by(posts.c.create_at.desc(), posts.c.id.desc())
    )
    rows = list((await conn.execute(query)).mappings())
    return JSONResponse(await post_list(conn, rows))


# --- threads and lookups --------------------------------------------------------------------------------------


@router.get("/posts/{post_id}/thread")
async def get_thread(post_id: str, conn: Conn, session: CurrentSession) -> JSONResponse:
    """The thread a post belongs to: its root and every live reply, newest first."""
    found = await readable_post(conn, session, post_id)
    root_id = found.post["root_id"] or found.post["id"]
    query = (
        _select_posts()
        .where(or_(posts.c.id == root_id, posts.c.root_id == root_id), posts.c.delete_at == 0)
        .order_by(posts.c.create_at.desc(), posts.c.id.desc())
        .limit(THREAD_MAX_POSTS)
    )
    rows = list((await conn.execute(query)).mappings())
    return JSONResponse(await post_list(conn, rows))


@router.post("/posts/ids")
async def get_posts_by_ids(post_ids: Annotated[list[str], Body()], conn: Conn, session: CurrentSession) -> JSONResponse:
    """The live posts among ``post_ids`` in channels the caller may read (the others are left out)."""
    if not post_ids or len(post_ids) > POSTS_BY_IDS_MAX or not all(map(is_valid_id, post_ids)):
        raise invalid_body_param("post_ids")
    query = _select_posts().where(posts.c.id.in_(set(post_ids)), posts.c.delete_at == 0)
    rows = list((await conn.execute(query)).mappings())
    readable: dict[str, bool] = {}
    for channel_id in {r["channel_id"] for r in rows}:
        access = await channel_access(conn, session, channels.c.id == channel_id)
        readable[channel_id] = access is not None and access.can_read
    answer = [post_json(r) for r in rows if readable[r["channel_id"]]]
    await add_metadata(conn, answer)
    answer.sort(key=lambda p: (p["create_at"], p["id"]))
    return JSONResponse(answer)
