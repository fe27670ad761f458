"""Where archives are kept on aws (a moto server: the workspace's bucket, SSE-KMS under its key, whole or not at all)
and what the worker counts of an archive as it passes, whatever the chunk boundaries."""

from __future__ import annotations

import io
import json
import os
import uuid
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from control_plane.exports import archives

AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3() -> Iterator[tuple[Any, str]]:
    """An S3 client of a moto server holding the bucket ``cell-bucket``, and a KMS key's ARN; the archives module
    talks to the same server."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {**AWS_ENV, "AWS_ENDPOINT_URL": f"http://{host}:{port}"}.items():
            patch.setenv(key, value)
        archives._aws.cache_clear()
        session = boto3.session.Session(region_name="us-east-1")
        key_arn = session.client("kms").create_key(Description="cell key")["KeyMetadata"]["Arn"]
        client = session.client("s3")
        client.create_bucket(Bucket="cell-bucket")
        yield client, key_arn
        archives._aws.cache_clear()
    server.stop()


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    return (data[i : i + size] for i in range(0, len(data), size))


def test_an_archive_goes_to_the_workspace_bucket_encrypted_under_its_key(s3: tuple[Any, str]) -> None:
    client, key_arn = s3
    outputs = {"bucket": "cell-bucket", "region": "us-east-1", "kms_key_arn": key_arn}
    location = archives.s3_location(outputs, "0a1b2c3d4e5f", uuid.uuid4())
    assert location["key"].startswith("exports/0a1b2c3d4e5f/") and location["key"].endswith(".zip")
    data = os.urandom(archives.PART_BYTES + 12_345)  # two parts
    archives.save(location, _chunks(data, 1_000_000))

    head = client.head_object(Bucket="cell-bucket", Key=location["key"])
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == key_arn
    assert head["ContentLength"] == len(data)
    assert b"".join(archives.read(location)) == data


def test_a_broken_transfer_leaves_no_object_and_no_upload(s3: tuple[Any, str]) -> None:
    client, key_arn = s3
    location = archives.s3_location(
        {"bucket": "cell-bucket", "region": "us-east-1", "kms_key_arn": key_arn}, "0a1b2c3d4e5f", uuid.uuid4()
    )

    def breaking() -> Iterator[bytes]:
        yield os.urandom(archives.PART_BYTES)
        raise OSError("the workspace server went away")

    with pytest.raises(OSError, match="went away"):
        archives.save(location, breaking())
    assert client.list_objects_v2(Bucket="cell-bucket", Prefix=location["key"]).get("KeyCount") == 0
    assert not client.list_multipart_uploads(Bucket="cell-bucket").get("Uploads")
    with pytest.raises(archives.ArchiveMissing):
        archives.read(location)


def _archive(lines: list[dict[str, Any]]) -> bytes:
    """An archive laid out as the workspace server writes it: an unseekable stream, ``export.jsonl`` first."""

    class Unseekable(io.RawIOBase):
        def __init__(self) -> None:
            self.data = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, chunk: Any) -> int:
            self.data += chunk
            return len(chunk)

    out = Unseekable()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("export.jsonl", "w", force_zip64=True) as jsonl:
            jsonl.write("".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines).encode())
        archive.writestr("data/post-lines-in-a-file.txt", b'{"type":"post"}\n' * 10)
    return bytes(out.data)


@pytest.mark.parametrize("chunk_size", [1, 7, 4096, 10**9])
def test_the_meter_counts_post_lines_and_sums_every_byte(chunk_size: int) -> None:
    long_message = "x" * 100_000
    lines = [
        {"type": "version", "version": 1},
        {"type": "user", "user": {"username": "post"}},
        *({"type": "post", "post": {"message": long_message if i % 10 == 0 else str(i)}} for i in range(250)),
        *({"type": "direct_post", "direct_post": {"message": "hi"}} for _ in range(7)),
    ]
    data = _archive(lines)
    meter = archives.ArchiveMeter()
    for chunk in _chunks(data, chunk_size):
        meter.feed(chunk)
    assert (meter.posts, meter.size) == (257, len(data))
