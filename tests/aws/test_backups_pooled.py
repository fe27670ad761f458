"""Professional (pooled) backups on moto and the machine's PostgreSQL: the workspace's database dumped as its own
role and its prefix packed into the backup bucket under the cell key, restored into a clone and in place, verified
byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import psycopg
import pytest

from control_plane.providers.aws.backup_store import PART_SIZE, BackupBucket
from control_plane.providers.aws.common import Aws, absent
from control_plane.providers.aws.sets import PooledProviders
from control_plane.providers.base import BackupPart, WorkspaceSpec
from infra.conventions import S3, backup_bucket, bucket_arn, tls_only_policy
from tests.aws.conftest import CELL, CloudCell
from tests.harness.moto import ACCOUNT_ID, REGION

Make = Callable[..., WorkspaceSpec]
BIG = PART_SIZE + 1234  # one file larger than a part: the files part goes up in several parts


def ensure_backup_bucket(backup: Any) -> str:
    """The backup bucket as the provider ensures it, its settings asserted (a provider ensures the bucket once per
    process and hour: the policy is only there after its first time)."""
    name = backup.bucket(REGION)
    assert name == backup_bucket("test", REGION, ACCOUNT_ID)
    s3 = boto3.client("s3")
    assert s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"] == S3.public_access_block()
    rules = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=name)["TagSet"]}
    assert tags["canopy:managed-by"] == "canopy"
    policy = absent(lambda: s3.get_bucket_policy(Bucket=name)["Policy"], "NoSuchBucketPolicy")
    if policy is not None:
        assert json.loads(policy) == tls_only_policy(bucket_arn(name))
    return name


@pytest.fixture
def provisioned(
    workspace: Make, pooled: PooledProviders, cleanup: list[Any]
) -> Callable[[], tuple[WorkspaceSpec, dict[str, Any]]]:
    """Factory: a professional workspace with its database and prefix ensured; its outputs."""

    def make() -> tuple[WorkspaceSpec, dict[str, Any]]:
        ws = workspace("professional", cell=CELL)
        cleanup.append(lambda: pooled.database.teardown(ws))
        cleanup.append(lambda: pooled.storage.teardown(ws))
        outputs = {**pooled.database.ensure(ws).outputs, **pooled.storage.ensure(ws).outputs}
        return ws, outputs

    return make


def rows(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT id, message, blob FROM posts ORDER BY id").fetchall()


def files(outputs: dict[str, Any]) -> dict[str, bytes]:
    """Every object under the workspace's prefix (relative name -> bytes), each asserted under the cell key."""
    s3 = boto3.client("s3")
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=outputs["bucket"], Prefix=outputs["bucket_prefix"]):
        for item in page.get("Contents", []):
            got = s3.get_object(Bucket=outputs["bucket"], Key=item["Key"])
            assert got["ServerSideEncryption"] == "aws:kms" and got["SSEKMSKeyId"] == outputs["kms_key_arn"]
            found[item["Key"].removeprefix(outputs["bucket_prefix"])] = got["Body"].read()
    return found


def put(outputs: dict[str, Any], name: str, body: bytes) -> None:
    """Write a file as the workspace server does: an object under its prefix, SSE-KMS under the cell key."""
    boto3.client("s3").put_object(
        Bucket=outputs["bucket"],
        Key=outputs["bucket_prefix"] + name,
        Body=body,
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=outputs["kms_key_arn"],
    )


def test_pooled_backup_restores_into_a_clone_and_in_place_byte_for_byte(
    pooled: PooledProviders, provisioned: Callable[[], tuple[WorkspaceSpec, dict[str, Any]]], aws_cell: CloudCell
) -> None:
    backup = pooled.backup
    bucket = ensure_backup_bucket(backup)
    (a, out_a), (b, out_b) = provisioned(), provisioned()
    url_a, url_b = pooled.database.connection_url(a), pooled.database.connection_url(b)
    with psycopg.connect(url_a) as conn:
        conn.execute("CREATE TABLE posts (id int PRIMARY KEY, message text, blob bytea)")
        for i in range(200):
            conn.execute("INSERT INTO posts VALUES (%s, %s, %s)", (i, f"post {i} ✓", os.urandom(64)))
    put(out_a, "data/users/u1/avatar.png", os.urandom(3000))
    put(out_a, "data/teams/t1/channels/c1/big.bin", os.urandom(BIG))
    put(out_a, "data/empty.txt", b"")
    at_backup = rows(url_a), files(out_a)

    backup_id = uuid.uuid4()
    database = backup.back_up_database(a, out_a, backup_id)
    files_part = backup.back_up_files(a, out_a, backup_id)
    s3 = boto3.client("s3")
    for part, name in ((database, "database.dump"), (files_part, "files.tar")):
        key = f"backups/{a.short_id}/{backup_id}/{name}"
        assert part.location == {
            "bucket": bucket,
            "key": key,
            "region": REGION,
            "kms_key_arn": aws_cell.outputs.kms_key_arn,
        }
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == aws_cell.outputs.kms_key_arn
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert (len(body), hashlib.sha256(body).hexdigest()) == (part.size, part.sha256)
        assert backup.verify(part) is None
    assert files_part.size > BIG
    assert (database.count, files_part.count) == (200, 3)

    # Both workspaces change after the backup.
    with psycopg.connect(url_a) as conn:
        conn.execute("INSERT INTO posts VALUES (1000, 'after the backup', NULL)")
        conn.execute("DELETE FROM posts WHERE id < 10")
    put(out_a, "data/after.txt", b"after")
    put(out_a, "data/users/u1/avatar.png", b"changed")
    with psycopg.connect(url_b) as conn:
        conn.execute("CREATE TABLE other (x int)")
    put(out_b, "data/b-only.txt", b"b")

    for ws, outputs, url in ((b, out_b, url_b), (a, out_a, url_a)):  # into the clone, then in place
        backup.restore_database(ws, outputs, database)
        backup.restore_files(ws, outputs, files_part)
        assert rows(url) == at_backup[0]
        assert files(outputs) == at_backup[1]
    with psycopg.connect(url_b) as conn:
        assert conn.execute("SELECT to_regclass('other')").fetchone() == (None,)
        assert conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'posts'").fetchone() == (
            f"ws_{b.short_id}",
        )

    # A flipped byte in a backup object is found by verify.
    key = files_part.location["key"]
    body = bytearray(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    body[len(body) // 2] ^= 0x01
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=bytes(body),
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=aws_cell.outputs.kms_key_arn,
    )
    assert backup.verify(files_part) == f"backup object {key} fails its SHA-256 check"
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=bytes(body[:-1]),
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=aws_cell.outputs.kms_key_arn,
    )
    assert backup.verify(files_part) == f"backup object {key} holds {files_part.size - 1} bytes, not {files_part.size}"

    for part in (database, files_part):
        backup.discard(part)
        backup.discard(part)
        assert backup.verify(part) == f"backup object {part.location['key']} is missing"
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix=f"backups/{a.short_id}/")


def test_a_failed_upload_leaves_no_object_and_no_upload(aws: Aws, pooled: PooledProviders, aws_cell: CloudCell) -> None:
    store = BackupBucket(aws, "test")
    bucket = ensure_backup_bucket(store)
    key = f"backups/{uuid.uuid4().hex[:12]}/broken/files.tar"

    def chunks() -> Iterator[bytes]:
        yield os.urandom(PART_SIZE + 10)  # the first part goes up
        raise RuntimeError("the source failed")

    with pytest.raises(RuntimeError, match="the source failed"):
        store.write("files", REGION, key, aws_cell.outputs.kms_key_arn, chunks())
    s3 = boto3.client("s3")
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix=key)
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    part = BackupPart("files", {"bucket": bucket, "key": key, "region": REGION, "kms_key_arn": "k"}, 1, "0")
    assert pooled.backup.verify(part) == f"backup object {key} is missing"
