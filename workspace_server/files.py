"""Files (``/api/v4/files`` and ``/api/v4/posts/{post_id}/files/info``): upload, attach to posts, download,
thumbnails and previews of images.

A file is readable by its uploader, and by whoever may read the channel of the post it is attached to (an
unattached file only by its uploader; system admins always). Whether a file is an image is decided by decoding
it, never by its name: a ``.png`` that does not decode as an image is served as an opaque download and gets no
thumbnail."""

from __future__ import annotations

import asyncio
import datetime
import io
import mimetypes
import re
import tempfile
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any, BinaryIO

from fastapi import APIRouter, FastAPI, Query, Request
from sqlalchemy import RowMapping, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.datastructures import UploadFile
from starlette.responses import Response, StreamingResponse
from starlette.types import Message, Receive

from workspace_server.auth import CurrentSession, Session
from workspace_server.channels import channel_access, channel_not_found
from workspace_server.db import Conn
from workspace_server.ids import is_valid_id, new_id, now_ms
from workspace_server.plan import WritingSession
from workspace_server.post_metadata import file_info_json
from workspace_server.schema import channels, file_infos, posts
from workspace_server.settings import Settings
from workspace_server.storage import ObjectNotFound, Storage, create_storage
from workspace_server.web import AppError, JSONResponse, invalid_body_param, invalid_url_param, permission_error

router = APIRouter(prefix="/api/v4")

MAX_FILES_PER_POST = 10
MULTIPART_OVERHEAD_BYTES = 1024 * 1024
NAME_MAX_CHARS = 256
SPOOL_BYTES = 1024 * 1024
# Mattermost's thumbnail box and preview width (model.ThumbnailWidth/Height, PreviewWidth).
THUMBNAIL_SIZE = (120, 100)
PREVIEW_WIDTH = 1920
# Larger images are stored but not decoded (Mattermost's FileSettings.MaxImageResolution default).
MAX_IMAGE_PIXELS = 33_177_600
JPEG_QUALITY = 90
# Image formats that are decoded for their size, thumbnail and preview, and served inline.
_IMAGE_FORMATS = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
}
# Types a browser would run or render as a page: never trusted from a file name.
_ACTIVE_TYPES = frozenset(
    {"text/html", "image/svg+xml", "application/xhtml+xml", "text/javascript", "application/javascript"}
)
_MAGIC = (
    (b"MZ", "application/x-msdownload"),
    (b"\x7fELF", "application/x-executable"),
    (b"%PDF-", "application/pdf"),
    (b"PK\x03\x04", "application/zip"),
)
_UNSAFE_KEY_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def storage_for(app: FastAPI) -> Storage:
    """The app's storage backend, made on first use."""
    storage: Storage | None = getattr(app.state, "storage", None)
    if storage is None:
        storage = create_storage(app.state.settings)
        app.state.storage = storage
    return storage


async def storage_usage(app: FastAPI, conn: AsyncConnection) -> int:
    """Bytes of stored files: measured by the backend when it can, else the sum the database keeps."""
    measured = await storage_for(app).usage_bytes()
    if measured is not None:
        return measured
    total = await conn.scalar(select(func.coalesce(func.sum(file_infos.c.stored_bytes), 0)))
    return int(total or 0)


def file_too_large(name: str, size: int | None, limit: int) -> AppError:
    """413 for an upload over ``WS_MAX_FILE_SIZE``."""
    what = f"{size} bytes" if size is not None else "The upload"
    return AppError(
        413,
        "api.file.upload_file.too_large_detailed.app_error",
        f"Unable to upload file {name}. {what} exceeds the maximum allowed {limit} bytes.",
    )


def file_not_found() -> AppError:
    """404 for a file id that matches no live file."""
    return AppError(404, "app.file_info.get.app_error", "Unable to get the file info.")


# --- what a file is -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rendered:
    """What decoding a file found: its type and, for images, their size, thumbnail and preview (JPEG)."""

    mime_type: str
    width: int = 0
    height: int = 0
    thumbnail: bytes = b""
    preview: bytes = b""


def _sniff(head: bytes, name: str) -> str:
    """The MIME type of a file that is not a decodable image: from its magic bytes when known, else from its
    name, except that a name never makes it an image or an active document."""
    for magic, mime in _MAGIC:
        if head.startswith(magic):
            return mime
    guessed = mimetypes.guess_type(name, strict=False)[0] or ""
    if not guessed or guessed.startswith("image/") or guessed in _ACTIVE_TYPES:
        return "application/octet-stream"
    return guessed


def _jpeg(image: Any) -> bytes:
    from PIL import Image

    if image.mode not in ("RGB", "L"):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        image = flat
    out = io.BytesIO()
    image.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def render(source: BinaryIO, name: str) -> Rendered:
    """Decode ``source`` if it is an image of a known format (by content, not name) and make its thumbnail and
    preview. Runs in a worker thread."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    source.seek(0)
    head = source.read(16)
    source.seek(0)
    try:
        with Image.open(source) as image:
            if image.format not in _IMAGE_FORMATS:
                return Rendered(_sniff(head, name))
            mime = _IMAGE_FORMATS[image.format]
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                return Rendered(mime, width, height)
            image.load()
            upright = ImageOps.exif_transpose(image) or image
            width, height = upright.size
            thumbnail = upright.copy()
            thumbnail.thumbnail(THUMBNAIL_SIZE)
            preview = upright
            if width > PREVIEW_WIDTH:
                preview = upright.resize((PREVIEW_WIDTH, max(1, height * PREVIEW_WIDTH // width)))
            return Rendered(mime, width, height, _jpeg(thumbnail), _jpeg(preview))
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError, SyntaxError):
        return Rendered(_sniff(head, name))


def clean_name(raw: str) -> str:
    """The file's base name as shown (no directories), at most :data:`NAME_MAX_CHARS` characters."""
    name = raw.replace("\\", "/").rpartition("/")[2].strip().replace("\x00", "")
    if len(name) > NAME_MAX_CHARS:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: NAME_MAX_CHARS - len(ext) - 1] + dot + ext) if dot and len(ext) < 20 else name[:NAME_MAX_CHARS]
    return name or "file"


def _key_name(name: str) -> str:
    return _UNSAFE_KEY_CHARS.sub("_", name).lstrip(".")[:100] or "file"


async def store_file(
    conn: AsyncConnection,
    storage: Storage,
    *,
    source: BinaryIO,
    size: int,
    raw_name: str,
    channel_id: str,
    user_id: str,
) -> dict[str, Any]:
    """Store an uploaded file (and, for images, its thumbnail and preview) and record it, unattached; the caller
    commits. Answers its ``FileInfo`` JSON."""
    name = clean_name(raw_name)
    rendered = await asyncio.to_thread(render, source, name)
    file_id, now = new_id(), now_ms()
    day = datetime.datetime.fromtimestamp(now / 1000, datetime.UTC).strftime("%Y%m%d")
    base = f"{day}/channels/{channel_id}/users/{user_id}/{file_id}/{_key_name(name)}"
    await storage.put_file(base, source, rendered.mime_type)
    thumbnail_path = preview_path = ""
    if rendered.thumbnail:
        thumbnail_path, preview_path = f"{base}_thumb.jpg", f"{base}_preview.jpg"
        await storage.put_bytes(thumbnail_path, rendered.thumbnail, "image/jpeg")
        await storage.put_bytes(preview_path, rendered.preview, "image/jpeg")
    extension = name.rpartition(".")[2].lower() if "." in name else ""
    values = {
        "id": file_id,
        "user_id": user_id,
        "channel_id": channel_id,
        "create_at": now,
        "update_at": now,
        "name": name,
        "extension": extension[:64],
        "size": size,
        "mime_type": rendered.mime_type,
        "width": rendered.width,
        "height": rendered.height,
        "has_preview_image": bool(rendered.preview),
        "path": base,
        "thumbnail_path": thumbnail_path,
        "preview_path": preview_path,
        "stored_bytes": size + len(rendered.thumbnail) + len(rendered.preview),
    }
    row = (await conn.execute(insert(file_infos).values(values).returning(file_infos))).mappings().one()
    return file_info_json(row)


# --- upload ---------------------------------------------------------------------------------------------------


class _TooLarge(Exception):
    pass


def _limited(receive: Receive, limit: int) -> Receive:
    """``receive`` that gives up once the request body passes ``limit`` bytes, whatever Content-Length says."""
    seen = 0

    async def limited() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _TooLarge
        return message

    return limited


async def _postable_channel(conn: AsyncConnection, session: Session, channel_id: str) -> None:
    if not is_valid_id(channel_id):
        raise invalid_url_param("channel_id")
    access = await channel_access(conn, session, channels.c.id == channel_id)
    if access is None:
        raise channel_not_found()
    if not access.can_post:
        raise permission_error()
    if access.channel["delete_at"]:
        raise AppError(400, "api.file.upload_file.archived_channel.app_error", "Can not upload to an archived channel.")


@router.post("/files", status_code=201)
async def upload_files(request: Request, conn: Conn, session: WritingSession) -> JSONResponse:
    """Upload files to a channel the caller may post in: ``multipart/form-data`` with ``channel_id`` and one or
    more ``files`` parts (and optional ``client_ids``), or the raw body with ``?channel_id=&filename=``. Files
    stay unattached until a post names them in ``file_ids``."""
    settings: Settings = request.app.state.settings
    limit = settings.max_file_size
    storage = storage_for(request.app)
    is_multipart = request.headers.get("content-type", "").startswith("multipart/form-data")
    declared = request.headers.get("content-length")
    body_limit = limit + MULTIPART_OVERHEAD_BYTES if is_multipart else limit
    if declared is not None and declared.isdigit() and int(declared) > body_limit:
        raise file_too_large(request.query_params.get("filename", "upload"), int(declared), limit)
    limited = Request(request.scope, _limited(request.receive, body_limit))
    infos: list[dict[str, Any]] = []
    client_ids: list[str] = []
    if is_multipart:
        try:
            form = await limited.form(max_files=MAX_FILES_PER_POST, max_fields=2 * MAX_FILES_PER_POST + 2)
        except _TooLarge:
            raise file_too_large("upload", None, limit) from None
        try:
            channel_id = str(form.get("channel_id") or request.query_params.get("channel_id", ""))
            uploads = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
            client_ids = [str(c) for c in form.getlist("client_ids")]
            if not uploads:
                raise invalid_body_param("files")
            for upload in uploads:
                if upload.size is not None and upload.size > limit:
                    raise file_too_large(clean_name(upload.filename or ""), upload.size, limit)
            await _postable_channel(conn, session, channel_id)
            for upload in uploads:
                infos.append(
                    await store_file(
                        conn,
                        storage,
                        source=upload.file,
                        size=upload.size or 0,
                        raw_name=upload.filename or "file",
                        channel_id=channel_id,
                        user_id=session.user_id,
                    )
                )
        finally:
            await form.close()
    else:
        channel_id = request.query_params.get("channel_id", "")
        filename = request.query_params.get("filename", "")
        if not filename:
            raise invalid_url_param("filename")
        await _postable_channel(conn, session, channel_id)
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
            size = 0
            try:
                async for chunk in limited.stream():
                    size += len(chunk)
                    await asyncio.to_thread(spool.write, chunk)
            except _TooLarge:
                raise file_too_large(clean_name(filename), None, limit) from None
            infos.append(
                await store_file(
                    conn,
                    storage,
                    source=spool,  # type: ignore[arg-type]
                    size=size,
                    raw_name=filename,
                    channel_id=channel_id,
                    user_id=session.user_id,
                )
            )
        client_id = request.query_params.get("client_id")
        if client_id:
            client_ids = [client_id]
    await conn.commit()
    return JSONResponse({"file_infos": infos, "client_ids": client_ids}, status_code=201)


# --- attaching to posts ---------------------------------------------------------------------------------------


def check_file_ids(file_ids: list[str]) -> None:
    """400 unless ``file_ids`` is a short list of ids."""
    if len(file_ids) > MAX_FILES_PER_POST or not all(map(is_valid_id, file_ids)):
        raise AppError(400, "model.post.is_valid.file_ids.app_error", "Invalid file ids.")


async def attach_files(conn: AsyncConnection, post: dict[str, Any], file_ids: list[str]) -> None:
    """Attach to the new ``post`` the files among ``file_ids`` that its author uploaded to its channel and that
    no post has yet; the others are dropped, as Mattermost does. Updates the post row and its JSON (``file_ids``
    and ``metadata.files``); the caller commits."""
    if not file_ids:
        return
    stmt = (
        update(file_infos)
        .where(
            file_infos.c.id.in_(set(file_ids)),
            file_infos.c.user_id == post["user_id"],
            file_infos.c.channel_id == post["channel_id"],
            file_infos.c.post_id == "",
            file_infos.c.delete_at == 0,
        )
        .values(post_id=post["id"], update_at=now_ms())
        .returning(file_infos)
    )
    attached = {row["id"]: row for row in (await conn.execute(stmt)).mappings()}
    ordered = [attached[i] for i in dict.fromkeys(file_ids) if i in attached]
    if not ordered:
        return
    ids = [row["id"] for row in ordered]
    await conn.execute(update(posts).where(posts.c.id == post["id"]).values(file_ids=ids))
    post["file_ids"] = ids
    post.setdefault("metadata", {})["files"] = [file_info_json(row) for row in ordered]


# --- reading --------------------------------------------------------------------------------------------------


async def readable_file(conn: AsyncConnection, session: Session, file_id: str) -> RowMapping:
    """The live file ``file_id`` if the caller may read it: 404 if there is none, 403 if they may not."""
    if not is_valid_id(file_id):
        raise invalid_url_param("file_id")
    info = (await conn.execute(select(file_infos).where(file_infos.c.id == file_id))).mappings().first()
    if info is None or info["delete_at"]:
        raise file_not_found()
    if info["user_id"] == session.user_id or session.is_system_admin:
        return info
    if not info["post_id"]:
        raise permission_error()
    access = await channel_access(conn, session, channels.c.id == info["channel_id"])
    if access is None or not access.can_read:
        raise permission_error()
    return info


def _content_disposition(kind: str, name: str) -> str:
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "").replace("\\", "")
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{urllib.parse.quote(name, safe='')}"


async def _stream_response(
    storage: Storage, key: str, media_type: str, size: int | None, disposition: str
) -> StreamingResponse:
    chunks = storage.stream(key)
    try:
        first = await anext(chunks)
    except StopAsyncIteration:
        first = b""
    except ObjectNotFound:
        raise file_not_found() from None

    async def body() -> AsyncIterator[bytes]:
        yield first
        async for chunk in chunks:
            yield chunk

    headers = {
        "Content-Disposition": disposition,
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, max-age=2592000",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }
    if size is not None:
        headers["Content-Length"] = str(size)
    return StreamingResponse(body(), media_type=media_type, headers=headers)


@router.get("/files/{file_id}", response_model=None)
async def get_file(
    file_id: str, request: Request, conn: Conn, session: CurrentSession, download: bool = False
) -> Response:
    """The file's bytes: images inline (unless ``?download=1``), anything else as an attachment."""
    info = await readable_file(conn, session, file_id)
    inline = bool(info["width"]) and not download
    disposition = _content_disposition("inline" if inline else "attachment", info["name"])
    media_type = info["mime_type"] or "application/octet-stream"
    return await _stream_response(storage_for(request.app), info["path"], media_type, info["size"], disposition)


@router.get("/files/{file_id}/info")
async def get_file_info(file_id: str, conn: Conn, session: CurrentSession) -> JSONResponse:
    """The file's ``FileInfo``."""
    return JSONResponse(file_info_json(await readable_file(conn, session, file_id)))


async def _image_variant(
    request: Request, conn: AsyncConnection, session: Session, file_id: str, which: str
) -> Response:
    info = await readable_file(conn, session, file_id)
    key = info[f"{which}_path"]
    if not key:
        raise AppError(400, f"api.file.get_file_{which}.no_{which}.app_error", f"File doesn't have a {which} image.")
    data = await storage_for(request.app).read(key)
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=2592000"}
    return Response(data, media_type="image/jpeg", headers=headers)


@router.get("/files/{file_id}/thumbnail", response_model=None)
async def get_file_thumbnail(file_id: str, request: Request, conn: Conn, session: CurrentSession) -> Response:
    """The image's thumbnail (JPEG, within 120x100); 400 for files that are not images."""
    return await _image_variant(request, conn, session, file_id, "thumbnail")


@router.get("/files/{file_id}/preview", response_model=None)
async def get_file_preview(file_id: str, request: Request, conn: Conn, session: CurrentSession) -> Response:
    """The image's preview (JPEG, at most 1920 pixels wide); 400 for files that are not images."""
    return await _image_variant(request, conn, session, file_id, "preview")


@router.get("/posts/{post_id}/files/info")
async def get_post_files(
    post_id: str, conn: Conn, session: CurrentSession, include_deleted: Annotated[bool, Query()] = False
) -> JSONResponse:
    """The ``FileInfo`` of each file attached to a post the caller may read."""
    if not is_valid_id(post_id):
        raise invalid_url_param("post_id")
    post = (await conn.execute(select(posts.c.channel_id, posts.c.delete_at).where(posts.c.id == post_id))).first()
    if post is None or (post.delete_at and not (include_deleted and session.is_system_admin)):
        raise AppError(404, "app.post.get.app_error", "Unable to get the post.")
    access = await channel_access(conn, session, channels.c.id == post.channel_id)
    if access is None or not access.can_read:
        raise permission_error()
    query = select(file_infos).where(file_infos.c.post_id == post_id).order_by(file_infos.c.create_at, file_infos.c.id)
    if not include_deleted:
        query = query.where(file_infos.c.delete_at == 0)
    return JSONResponse([file_info_json(i) for i in (await conn.execute(query)).mappings()])
