"""Where uploaded files live: a local directory (the embedded default) or an S3 bucket with SSE-KMS.

Both backends store opaque objects under keys the server makes up itself (never from user input alone)."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from workspace_server.settings import Settings

CHUNK_BYTES = 1024 * 1024
# S3 uploads above this size go in parts of PART_BYTES (S3's minimum part size is 5 MiB).
MULTIPART_THRESHOLD_BYTES = 8 * 1024 * 1024
PART_BYTES = 8 * 1024 * 1024


class ObjectNotFound(Exception):
    """The key names no stored object."""


class Storage(Protocol):
    """A place for file objects."""

    async def put_file(self, key: str, source: BinaryIO, content_type: str) -> None:
        """Store the contents of the (seekable) file object ``source``, from its start, under ``key``."""
        ...

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        """Store ``data`` under ``key``."""
        ...

    def stream(self, key: str) -> AsyncIterator[bytes]:
        """The object's bytes, in chunks (raises :class:`ObjectNotFound` on the first iteration if missing)."""
        ...

    async def read(self, key: str) -> bytes:
        """The whole object (for small ones: thumbnails and previews)."""
        ...

    async def usage_bytes(self) -> int | None:
        """Bytes stored, if the backend can tell cheaply; ``None`` to count from the database instead."""
        ...


class LocalStorage:
    """Objects as files under a directory; a key is a relative path."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"key {key!r} leaves the storage directory")
        return path

    def _write(self, key: str, writer: Any) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                writer(out)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    async def put_file(self, key: str, source: BinaryIO, content_type: str) -> None:
        """Copy ``source`` into place (atomically: readers see all of it or nothing)."""

        def copy(out: Any) -> None:
            source.seek(0)
            while chunk := source.read(CHUNK_BYTES):
                out.write(chunk)

        await asyncio.to_thread(self._write, key, copy)

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        """Write ``data`` into place atomically."""
        await asyncio.to_thread(self._write, key, lambda out: out.write(data))

    async def stream(self, key: str) -> AsyncIterator[bytes]:
        """Read the file in chunks, off the event loop."""
        try:
            handle = await asyncio.to_thread(open, self._path(key), "rb")
        except FileNotFoundError:
            raise ObjectNotFound(key) from None
        try:
            while chunk := await asyncio.to_thread(handle.read, CHUNK_BYTES):
                yield chunk
        finally:
            handle.close()

    async def read(self, key: str) -> bytes:
        """The whole file."""
        try:
            return await asyncio.to_thread(self._path(key).read_bytes)
        except FileNotFoundError:
            raise ObjectNotFound(key) from None

    async def usage_bytes(self) -> int:
        """Total size of the regular files under the directory."""
        return await asyncio.to_thread(directory_bytes, self.root)


def directory_bytes(root: Path) -> int:
    """Total size of the regular files under ``root``."""
    total = 0
    for directory, _, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            if not os.path.islink(path):
                total += os.path.getsize(path)
    return total


class S3Storage:
    """Objects in an S3 bucket under a prefix. Every write asks for SSE-KMS with the workspace's key (and an S3
    bucket key, which keeps KMS requests down). boto3 finds the endpoint, region and credentials itself
    (``AWS_ENDPOINT_URL``, ``AWS_REGION``, ...)."""

    def __init__(self, bucket: str, prefix: str, kms_key_id: str, client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.kms_key_id = kms_key_id
        self._client = client

    @property
    def client(self) -> Any:
        """The boto3 S3 client (thread-safe; made on first use)."""
        if self._client is None:
            import boto3

            self._client = boto3.client("s3")
        return self._client

    def encryption_args(self) -> dict[str, Any]:
        """The SSE-KMS arguments of every write."""
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key_id, "BucketKeyEnabled": True}

    async def put_file(self, key: str, source: BinaryIO, content_type: str) -> None:
        """Upload ``source``: one PutObject, or a multipart upload (encrypted from its creation) when large."""
        await asyncio.to_thread(self._put_file, self.prefix + key, source, content_type)

    def _put_file(self, key: str, source: BinaryIO, content_type: str) -> None:
        source.seek(0, os.SEEK_END)
        size = source.tell()
        source.seek(0)
        common = {"Bucket": self.bucket, "Key": key}
        if size <= MULTIPART_THRESHOLD_BYTES:
            self.client.put_object(**common, Body=source, ContentType=content_type, **self.encryption_args())
            return
        upload_id = self.client.create_multipart_upload(**common, ContentType=content_type, **self.encryption_args())[
            "UploadId"
        ]
        try:
            parts: list[dict[str, Any]] = []
            while chunk := source.read(PART_BYTES):
                number = len(parts) + 1
                etag = self.client.upload_part(**common, UploadId=upload_id, PartNumber=number, Body=chunk)["ETag"]
                parts.append({"ETag": etag, "PartNumber": number})
            self.client.complete_multipart_upload(**common, UploadId=upload_id, MultipartUpload={"Parts": parts})
        except BaseException:
            self.client.abort_multipart_upload(**common, UploadId=upload_id)
            raise

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        """One PutObject."""
        await asyncio.to_thread(
            self.client.put_object,
            Bucket=self.bucket,
            Key=self.prefix + key,
            Body=data,
            ContentType=content_type,
            **self.encryption_args(),
        )

    async def _get(self, key: str) -> Any:
        from botocore.exceptions import ClientError

        try:
            return await asyncio.to_thread(self.client.get_object, Bucket=self.bucket, Key=self.prefix + key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise ObjectNotFound(key) from None
            raise

    async def stream(self, key: str) -> AsyncIterator[bytes]:
        """GetObject, read in chunks off the event loop."""
        body = (await self._get(key))["Body"]
        try:
            while chunk := await asyncio.to_thread(body.read, CHUNK_BYTES):
                yield chunk
        finally:
            body.close()

    async def read(self, key: str) -> bytes:
        """The whole object."""
        body = (await self._get(key))["Body"]
        try:
            data: bytes = await asyncio.to_thread(body.read)
        finally:
            body.close()
        return data

    async def usage_bytes(self) -> None:
        """Listing a bucket costs a request per thousand objects: the database's sizes are used instead."""
        return None


def create_storage(settings: Settings) -> Storage:
    """The backend ``settings`` ask for: S3 when ``WS_S3_BUCKET`` is set, else ``WS_FILES_DIR``."""
    if settings.s3_bucket:
        return S3Storage(settings.s3_bucket, settings.s3_prefix, settings.s3_kms_key_id)
    return LocalStorage(settings.files_dir)
