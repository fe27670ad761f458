"""Posts (``/api/v4/posts`` and ``/api/v4/channels/{channel_id}/posts``)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from sqlalchemy import RowMapping, Select, func, literal, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workspace_server.auth import CurrentSession, Session, session_for_bearer
from workspace_server.channels import channel_access, readable_channel
from workspace_server.db import Conn
from workspace_server.events import Broadcast, dumps, flush, publish
from workspace_server.files import attach_files, check_file_ids
from workspace_server.ids import is_valid_id, new_id, now_ms
from workspace_server.plan import read_only_error
from workspace_server.post_metadata import add_metadata
from workspace_server.post_writer import NewPost, PostWriter, write_posts
from workspace_server.realtime import defer_posted, parse_mentions, posted_context, posted_data
from workspace_server.schema import channels, posts
from workspace_server.web import (
    INT_MAX,
    AppError,
    JSONResponse,
    PageQuery,
    PerPageQuery,
    app_error_body,
    internal_error,
    invalid_body_param,
    invalid_url_param,
    permission_error,
)

router = APIRouter(prefix="/api/v4")
log = logging.getLogger(__name__)

MESSAGE_MAX_RUNES = 16383
PROPS_MAX_CHARS = 800_000
PER_PAGE_DEFAULT = 60
PER_PAGE_MAX = 200
# Props that make a post claim to come from an integration; a user's own post may not set them.
_RESERVED_PROPS = frozenset(
    {"from_webhook", "from_bot", "from_plugin", "override_username", "override_icon_url", "override_icon_emoji"}
)
_PUNCT_START = re.compile(r"^[^\w\s#]+")
_PUNCT_END = re.compile(r"[^\w\s]+$")
_HASHES = re.compile(r"^#{2,}")
_HASHTAG = re.compile(r"^#[^\W\d_][\w.-]*[^\W_]$")
_HASHTAGS_MAX_CHARS = 1000
_thread_root = posts.alias("thread_root")
# The columns a post's JSON comes from (not the search vector).
POST_COLUMNS = [c for c in posts.c if c.name != "message_tsv"]


def parse_hashtags(message: str) -> str:
    """The message's hashtags, space-separated, as Mattermost's ``ParseHashtags`` finds them."""
    if "#" not in message:
        return ""
    found = []
    for word in message.split():
        word = _HASHES.sub("#", _PUNCT_END.sub("", _PUNCT_START.sub("", word)))
        if _HASHTAG.match(word):
            found.append(word)
    tags = " ".join(found)
    if len(tags) > _HASHTAGS_MAX_CHARS:
        tags = tags[: _HASHTAGS_MAX_CHARS - 1].rpartition(" ")[0]
    return tags


def post_json(post: RowMapping | Mapping[str, Any]) -> dict[str, Any]:
    """A post in Mattermost's ``Post`` shape."""
    return {
        "id": post["id"],
        "create_at": post["create_at"],
        "update_at": post["update_at"],
        "edit_at": post["edit_at"],
        "delete_at": post["delete_at"],
        "is_pinned": post["is_pinned"],
        "user_id": post["user_id"],
        "channel_id": post["channel_id"],
        "root_id": post["root_id"],
        "original_id": post["original_id"],
        "message": post["message"],
        "type": post["type"],
        "props": post["props"],
        "hashtags": post["hashtags"],
        "file_ids": post["file_ids"],
        "pending_post_id": "",
        "reply_count": post["reply_count"],
        "last_reply_at": post["last_reply_at"],
        "participants": None,
        "metadata": {},
    } | ({"has_reactions": True} if post.get("has_reactions") else {})


def _select_posts() -> Select[Any]:
    """Posts with their thread's reply count and last reply time, as Mattermost reports them on every post."""
    own = [c for c in POST_COLUMNS if c.name not in ("reply_count", "last_reply_at")]
    return select(
        *own,
        func.coalesce(_thread_root.c.reply_count, posts.c.reply_count).label("reply_count"),
        func.coalesce(_thread_root.c.last_reply_at, posts.c.last_reply_at).label("last_reply_at"),
    ).select_from(posts.outerjoin(_thread_root, _thread_root.c.id == posts.c.root_id))


async def _missing_roots(conn: AsyncConnection, page: list[RowMapping]) -> list[RowMapping]:
    """The thread roots of the page's replies that the page itself lacks."""
    have = {p["id"] for p in page}
    wanted = {p["root_id"] for p in page if p["root_id"] and p["root_id"] not in have}
    if not wanted:
        return []
    query = _select_posts().where(posts.c.id.in_(wanted), posts.c.delete_at == 0)
    return list((await conn.execute(query)).mappings())


class PostCreateBody(BaseModel):
    """``POST /posts``."""

    channel_id: str
    message: str = ""
    root_id: str = ""
    props: dict[str, Any] = {}
    pending_post_id: str = ""
    file_ids: list[str] = []


def new_post(
    *, channel_id: str, user_id: str, message: str, root_id: str, props: dict[str, Any], authorized: bool
) -> NewPost:
    """A post to write (see :class:`post_writer.NewPost`), its hashtags and mentions parsed."""
    mentioned, channel_wide = parse_mentions(message)
    return NewPost(
        id=new_id(),
        channel_id=channel_id,
        root_id=root_id,
        message=message,
        props=props,
        hashtags=parse_hashtags(message),
        sender_id=user_id,
        authorized=authorized,
        mentioned=mentioned,
        channel_wide=channel_wide,
        now=now_ms(),
    )


def _written_post(row: RowMapping | Mapping[str, Any]) -> dict[str, Any]:
    """The post JSON of a row of the batch statement; :class:`AppError` if the post was refused."""
    if row["refusal"] is not None:
        raise read_only_error(row["refusal"])
    if not row["may_post"]:
        raise permission_error()
    if row["channel_delete_at"]:
        raise AppError(400, "api.post.create_post.can_not_post_to_deleted.error", "Can not post to deleted channel.")
    if row["id"] is None:
        raise AppError(400, "api.post.create_post.root_id.app_error", "Invalid RootId parameter.")
    post = post_json(row)
    if row["root_id"]:
        post["reply_count"], post["last_reply_at"] = row["thread_reply_count"], row["create_at"]
    return post


async def insert_post(
    conn: AsyncConnection, *, channel_id: str, user_id: str, message: str, root_id: str, props: dict[str, Any]
) -> dict[str, Any]:
    """Store a post the caller may write (its access checked), or a reply when ``root_id`` is set, and count it on
    its channel, thread and members' unread and mention counts: 400 if ``root_id`` is not a root post of the
    channel. Answers the post JSON; the caller commits, and the ``posted`` event goes out once it has (see
    :func:`events.defer`)."""
    post = new_post(
        channel_id=channel_id, user_id=user_id, message=message, root_id=root_id, props=props, authorized=True
    )
    (row,) = await write_posts(conn, [post])
    written = _written_post(row)
    defer_posted(conn, written, posted_context(row))
    return written


@router.post("/posts", status_code=201)
async def create_post(body: PostCreateBody, request: Request, conn: Conn, session: CurrentSession) -> Response:
    """Post a message (or a reply, with ``root_id``) to a channel the caller is in (most requests are served by
    :class:`CreatePostFastPath`, with the same functions)."""
    props = checked_props(body, session)
    if body.file_ids:
        return JSONResponse(await _create_post_with_files(body, conn, session, props), status_code=201)
    encoded = await write_post(request.app.state.post_writer, session, body, props)
    return Response(encoded, status_code=201, media_type=JSONResponse.media_type)


def checked_props(body: PostCreateBody, session: Session) -> dict[str, Any]:
    """The props the new post ``body`` will have; :class:`AppError` if the body is invalid."""
    if not is_valid_id(body.channel_id):
        raise invalid_body_param("channel_id")
    if len(body.message) > MESSAGE_MAX_RUNES:
        raise AppError(400, "model.post.is_valid.msg.app_error", "Invalid message.")
    props = {k: v for k, v in body.props.items() if k not in _RESERVED_PROPS}
    if session.is_bot:
        props["from_bot"] = "true"
    props_json = json.dumps(props)
    if len(props_json) > PROPS_MAX_CHARS:
        raise AppError(400, "model.post.is_valid.props.app_error", "Invalid props.")
    check_file_ids(body.file_ids)
    return props


async def write_post(writer: PostWriter, session: Session, body: PostCreateBody, props: dict[str, Any]) -> str:
    """A new post without attachments, written by ``writer`` (group commit), its ``posted`` event published: the
    post's JSON (the answer, and what the event carries); :class:`AppError` if refused."""
    row = await writer.write(
        new_post(
            channel_id=body.channel_id,
            user_id=session.user_id,
            message=body.message,
            root_id=body.root_id,
            props=props,
            authorized=session.is_system_admin,
        )
    )
    post = _written_post(row)
    post["pending_post_id"] = body.pending_post_id
    encoded = dumps(post)
    await publish("posted", posted_data(post, posted_context(row), encoded), Broadcast(channel_id=body.channel_id))
    return encoded


async def _create_post_with_files(
    body: PostCreateBody, conn: AsyncConnection, session: Session, props: dict[str, Any]
) -> dict[str, Any]:
    """``POST /posts`` with attachments: the post and its files in one transaction."""
    access = await channel_access(conn, session, channels.c.id == body.channel_id)
    if access is None or not access.can_post:
        raise permission_error()
    if access.channel["delete_at"]:
        raise AppError(400, "api.post.create_post.can_not_post_to_deleted.error", "Can not post to deleted channel.")
    post = await insert_post(
        conn,
        channel_id=body.channel_id,
        user_id=session.user_id,
        message=body.message,
        root_id=body.root_id,
        props=props,
    )
    await attach_files(conn, post, body.file_ids)
    await conn.commit()
    post["pending_post_id"] = body.pending_post_id
    await flush(conn)
    return post


_MAX_FAST_BODY = 1024 * 1024
_NO_BODY: Message = {"type": "http.request", "body": b"", "more_body": False}


class CreatePostFastPath:
    """Pure ASGI middleware for the busiest request, ``POST /api/v4/posts`` with a bearer token: it calls
    :func:`checked_props` and :func:`write_post` as the route does, without the framework (its middleware,
    routing, dependency injection and response machinery cost as much CPU as writing the post). Anything off the
    common path goes on to the app, body replayed, so that the route answers it exactly as before: no token in the
    ``Authorization`` header (cookies: CSRF), an unknown session, a body that is not a valid ``PostCreateBody``,
    attachments. Errors are answered here with the same bodies as the app's error handlers. Sits inside
    :class:`web.RequestContextMiddleware` (request id, headers, paths), outside the framework."""

    def __init__(self, app: ASGIApp, *, engine: AsyncEngine, writer: PostWriter) -> None:
        self.app = app
        self.engine = engine
        self.writer = writer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve ``POST /api/v4/posts`` or pass the request on."""
        if scope["type"] != "http" or scope["path"] != "/api/v4/posts" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size, more = 0, True
        while more and size <= _MAX_FAST_BODY:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay(chunks, message, receive), send)
                return
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more = message.get("more_body", False)
        if more or not await self._serve(scope, b"".join(chunks), send):
            await self.app(scope, _replay(chunks, None if more else _NO_BODY, receive), send)

    async def _serve(self, scope: Scope, raw: bytes, send: Send) -> bool:
        """Answer the request, or ``False`` (having sent nothing) to leave it to the app."""
        authorization = next((value for name, value in scope["headers"] if name == b"authorization"), b"")
        scheme, _, token = authorization.decode("latin-1").partition(" ")
        token = token.strip()
        if scheme.lower() not in ("bearer", "token") or not token:
            return False
        try:
            body = PostCreateBody.model_validate_json(raw)
        except ValueError:  # not JSON, or not a valid body (pydantic's ValidationError is a ValueError)
            return False
        if body.file_ids:
            return False
        try:
            session = await session_for_bearer(self.engine, token)
            if session is None:
                return False
            payload = (await write_post(self.writer, session, body, checked_props(body, session))).encode()
            status = 201
        except AppError as error:
            payload, status = dumps(app_error_body(scope, error)).encode(), error.status_code
        except Exception:
            log.exception("POST /api/v4/posts failed")
            payload, status = dumps(app_error_body(scope, internal_error())).encode(), 500
        response_headers = [(b"content-length", str(len(payload)).encode()), (b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": payload})
        return True


def _replay(chunks: list[bytes], then: Message | None, receive: Receive) -> Receive:
    """A ``receive`` that gives the body read so far again (as one message, when complete), then ``then``'s
    message or what ``receive`` gives."""
    pending: list[Message] = []
    if then is _NO_BODY:
        pending.append({"type": "http.request", "body": b"".join(chunks), "more_body": False})
    else:
        pending.append({"type": "http.request", "body": b"".join(chunks), "more_body": True})
        if then is not None:
            pending.append(then)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


@router.get("/posts/{post_id}")
async def get_post(post_id: str, conn: Conn, session: CurrentSession) -> JSONResponse:
    """The post ``post_id``, if the caller may read its channel."""
    if not is_valid_id(post_id):
        raise invalid_url_param("post_id")
    query = _select_posts().where(posts.c.id == post_id, posts.c.delete_at == 0)
    post = (await conn.execute(query)).mappings().first()
    if post is None:
        raise AppError(404, "app.post.get.app_error", "Unable to get the post.")
    await readable_channel(conn, post["channel_id"], session)
    body = post_json(post)
    await add_metadata(conn, [body])
    return JSONResponse(body)


async def post_list(
    conn: AsyncConnection, rows: list[RowMapping], *, next_post_id: str = "", prev_post_id: str = ""
) -> dict[str, Any]:
    """Mattermost's ``PostList`` of ``rows`` (in order), with the thread roots their replies need, and metadata."""
    listed = [post_json(p) for p in [*rows, *await _missing_roots(conn, rows)]]
    await add_metadata(conn, listed)
    return {
        "order": [p["id"] for p in rows],
        "posts": {p["id"]: p for p in listed},
        "next_post_id": next_post_id,
        "prev_post_id": prev_post_id,
        "has_next": bool(prev_post_id),
        "first_inaccessible_post_time": 0,
    }


SINCE_MAX_POSTS = 1000
_post_key = tuple_(posts.c.create_at, posts.c.id)


async def _neighbour(conn: AsyncConnection, channel_id: str, post: RowMapping, *, newer: bool) -> str:
    """The id of the live post of the channel just newer (or older) than ``post``, or ``""``."""
    key = tuple_(literal(post["create_at"]), literal(post["id"]))
    query = select(posts.c.id).where(posts.c.channel_id == channel_id, posts.c.delete_at == 0)
    if newer:
        query = query.where(_post_key > key).order_by(posts.c.create_at, posts.c.id)
    else:
        query = query.where(_post_key < key).order_by(posts.c.create_at.desc(), posts.c.id.desc())
    found: str | None = await conn.scalar(query.limit(1))
    return found or ""


@router.get("/channels/{channel_id}/posts")
async def get_channel_posts(
    channel_id: str,
    conn: Conn,
    session: CurrentSession,
    page: PageQuery = 0,
    per_page: PerPageQuery = PER_PAGE_DEFAULT,
    since: Annotated[int | None, Query(ge=0, le=INT_MAX)] = None,
    before: str = "",
    after: str = "",
) -> JSONResponse:
    """The channel's posts, newest first, with the thread roots of their replies and the ids of the posts just
    newer (``next_post_id``) and just older (``prev_post_id``) than those listed. One of:

    - ``since`` (ms): every post created, edited or deleted after that time (deleted ones included, so that
      clients drop them), without cursors;
    - ``before``/``after`` (a post id): a page of the posts older/newer than that post;
    - else a page counted from the newest post."""
    channel = await readable_channel(conn, channel_id, session)
    per_page = min(per_page, PER_PAGE_MAX)
    in_channel = posts.c.channel_id == channel["id"]
    newest_first = (posts.c.create_at.desc(), posts.c.id.desc())
    if since is not None:
        query = _select_posts().where(in_channel, posts.c.update_at > since).order_by(*newest_first)
        rows = list((await conn.execute(query.limit(SINCE_MAX_POSTS))).mappings())
        return JSONResponse(await post_list(conn, rows))
    if before or after:
        cursor_id = before or after
        if not is_valid_id(cursor_id) or (before and after):
            raise invalid_url_param("before" if before else "after")
        cursor = await conn.execute(select(posts.c.create_at, posts.c.id).where(posts.c.id == cursor_id, in_channel))
        found = cursor.mappings().first()
        if found is None:
            return JSONResponse(await post_list(conn, []))
        key = tuple_(literal(found["create_at"]), literal(found["id"]))
        query = _select_posts().where(in_channel, posts.c.delete_at == 0).offset(page * per_page).limit(per_page)
        if before:
            rows = list((await conn.execute(query.where(_post_key < key).order_by(*newest_first))).mappings())
        else:
            oldest_first = query.where(_post_key > key).order_by(posts.c.create_at, posts.c.id)
            rows = list((await conn.execute(oldest_first)).mappings())[::-1]
        next_id = before if before and page == 0 else ""
        prev_id = after if after and page == 0 else ""
        if rows and not next_id:
            next_id = await _neighbour(conn, channel["id"], rows[0], newer=True)
        if rows and not prev_id:
            prev_id = await _neighbour(conn, channel["id"], rows[-1], newer=False)
        return JSONResponse(await post_list(conn, rows, next_post_id=next_id, prev_post_id=prev_id))
    offset = page * per_page
    # One query reads the page plus the posts on either side of it, which become the cursors.
    start = max(offset - 1, 0)
    query = (
        _select_posts()
        .where(in_channel, posts.c.delete_at == 0)
        .order_by(*newest_first)
        .offset(start)
        .limit(per_page + 1 + (offset - start))
    )
    rows = list((await conn.execute(query)).mappings())
    newer = rows.pop(0) if offset > start and rows else None
    older = rows.pop() if len(rows) > per_page else None
    body = await post_list(
        conn,
        rows,
        next_post_id=newer["id"] if newer is not None and rows else "",
        prev_post_id=older["id"] if older is not None else "",
    )
    return JSONResponse(body)
