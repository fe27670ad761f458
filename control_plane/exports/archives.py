"""Where export archives are kept, and what the worker measures of one as it passes.

- Local runtime: ``<state dir>/exports/<workspace id>/<export id>.zip`` (mode 0600), outside the workspace's own
  directory, so an archive outlives the workspace's teardown.
- aws: ``exports/<short id>/<export id>.zip`` in the workspace's bucket (the silo's own, or the cell's shared one:
  outside the ``workspaces/<short id>/`` prefix the workspace's pods may use), written as one multipart upload,
  SSE-KMS under the workspace's key (``kms_key_arn`` of its outputs) with an S3 bucket key.

An archive is written whole or not at all: the local file is renamed into place once complete, and an S3 upload
is completed only after its last part (aborted on any failure).
"""

from __future__ import annotations

import functools
import hashlib
import os
import struct
import uuid
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from control_plane.core.settings import get_settings

CHUNK_BYTES = 1024 * 1024
PART_BYTES = 8 * 1024 * 1024  # S3 parts: at least 5 MiB but the last
_POST_LINES = (b'{"type":"post"', b'{"type":"direct_post"')
_PREFIX_BYTES = max(len(prefix) for prefix in _POST_LINES)
_LOCAL_HEADER = b"PK\x03\x04"
_LOCAL_HEADER_BYTES = 30
_DEFLATED = 8


class ArchiveMeter:
    """Size, SHA-256 and posts so far of a workspace server's export archive, fed chunk by chunk.

    The server writes ``export.jsonl`` first, deflated; its post lines are counted by inflating that member as it
    arrives (``post`` and ``direct_post`` lines: root posts, each carrying its replies). Only the start of each
    line is kept, so a long line costs nothing.
    """

    def __init__(self) -> None:
        self.size = 0
        self.posts = 0
        self._sha256 = hashlib.sha256()
        self._head = b""
        self._inflater: Any = None
        self._done = False
        self._prefix = bytearray()
        self._at_line_start = True

    @property
    def sha256(self) -> str:
        """The hex digest of everything fed so far."""
        return self._sha256.hexdigest()

    def feed(self, chunk: bytes) -> None:
        """Account for the next ``chunk`` of the archive."""
        self.size += len(chunk)
        self._sha256.update(chunk)
        if self._done:
            return
        if self._inflater is None:
            self._head += chunk
            if len(self._head) < _LOCAL_HEADER_BYTES:
                return
            name_bytes, extra_bytes = struct.unpack_from("<HH", self._head, 26)
            start = _LOCAL_HEADER_BYTES + name_bytes + extra_bytes
            if len(self._head) < start:
                return
            if not self._head.startswith(_LOCAL_HEADER) or struct.unpack_from("<H", self._head, 8)[0] != _DEFLATED:
                self._done = True  # not the layout this counts in: size and checksum only
                return
            self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            chunk, self._head = self._head[start:], b""
        self._count(self._inflater.decompress(chunk))
        self._done = self._inflater.eof

    def _count(self, text: bytes) -> None:
        position = 0
        while True:
            newline = text.find(b"\n", position)
            if self._at_line_start:
                stop = len(text) if newline == -1 else newline
                self._prefix += text[position : min(stop, position + _PREFIX_BYTES - len(self._prefix))]
                if len(self._prefix) >= _PREFIX_BYTES or newline != -1:
                    self.posts += bytes(self._prefix).startswith(_POST_LINES)
                    self._prefix.clear()
                    self._at_line_start = False
            if newline == -1:
                return
            position = newline + 1
            self._at_line_start = True


def local_location(workspace_id: uuid.UUID, export_id: uuid.UUID) -> dict[str, Any]:
    """Where the local runtime keeps an export's archive."""
    root = get_settings().state_dir.resolve() / "exports" / str(workspace_id)
    return {"path": str(root / f"{export_id}.zip")}


def s3_location(outputs: dict[str, Any], short_id: str, export_id: uuid.UUID) -> dict[str, Any]:
    """Where the aws provider keeps an export's archive: the workspace's bucket, under its key."""
    return {
        "bucket": outputs["bucket"],
        "key": f"exports/{short_id}/{export_id}.zip",
        "region": outputs["region"],
        "kms_key_arn": outputs["kms_key_arn"],
    }


@functools.cache
def _aws() -> Any:
    from control_plane.providers.aws.common import Aws

    return Aws()


def save(location: dict[str, Any], chunks: Iterable[bytes]) -> None:
    """Write the archive ``chunks`` make to ``location``, whole or not at all."""
    if "path" in location:
        _save_file(Path(location["path"]), chunks)
    else:
        _save_object(location, chunks)


class ArchiveMissing(Exception):
    """No archive is kept at the location (removed by hand, or a bucket emptied)."""


def read(location: dict[str, Any]) -> Iterator[bytes]:
    """The archive at ``location``, in chunks (opened now: :class:`ArchiveMissing` if it is not there)."""
    if "path" in location:
        try:
            handle = open(location["path"], "rb")  # noqa: SIM115 (closed by the generator)
        except FileNotFoundError:
            raise ArchiveMissing(location["path"]) from None
        return _file_chunks(handle)
    from botocore.exceptions import ClientError

    s3 = _aws().client("s3", location["region"])
    try:
        body = s3.get_object(Bucket=location["bucket"], Key=location["key"])["Body"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            raise ArchiveMissing(location["key"]) from None
        raise
    return _body_chunks(body)


def discard(location: dict[str, Any]) -> None:
    """Remove the archive at ``location`` (idempotent)."""
    if "path" in location:
        Path(location["path"]).unlink(missing_ok=True)
    else:
        _aws().client("s3", location["region"]).delete_object(Bucket=location["bucket"], Key=location["key"])


def _file_chunks(handle: BinaryIO) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(CHUNK_BYTES):
            yield chunk


def _body_chunks(body: Any) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(CHUNK_BYTES)
    finally:
        body.close()


def _save_file(path: Path, chunks: Iterable[bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
            for chunk in chunks:
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _save_object(location: dict[str, Any], chunks: Iterable[bytes]) -> None:
    s3 = _aws().client("s3", location["region"])
    target = {"Bucket": location["bucket"], "Key": location["key"]}
    upload_id = s3.create_multipart_upload(
        **target,
        ContentType="application/zip",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=location["kms_key_arn"],
        BucketKeyEnabled=True,
    )["UploadId"]
    parts: list[dict[str, Any]] = []

    def upload(body: bytes) -> None:
        number = len(parts) + 1
        etag = s3.upload_part(**target, UploadId=upload_id, PartNumber=number, Body=body)["ETag"]
        parts.append({"ETag": etag, "PartNumber": number})

    try:
        pending = bytearray()
        for chunk in chunks:
            pending += chunk
            if len(pending) >= PART_BYTES:
                upload(bytes(pending))
                pending.clear()
        if pending or not parts:
            upload(bytes(pending))
        s3.complete_multipart_upload(**target, UploadId=upload_id, MultipartUpload={"Parts": parts})
    except BaseException:
        s3.abort_multipart_upload(**target, UploadId=upload_id)
        raise
