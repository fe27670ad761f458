"""The backup bucket of an environment and region, and backup objects streamed into and out of it.

The bucket (``infra.conventions.backup_bucket``) is ensured on first use by each process and again every
:data:`ENSURE_SECONDS`: every public access blocked, ACLs disabled, TLS-only policy, default SSE-KMS (S3's key: every
object names its own), incomplete multipart uploads aborted after a day, tags. Every object is written under the
workspace's key (SSE-KMS with ``SSEKMSKeyId``), in parts of :data:`PART_SIZE` once it outgrows one, and is either
complete or absent: a failed upload is aborted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from botocore.exceptions import ClientError

from control_plane.providers.aws.common import Aws, Expiring, absent, error_code, tolerating
from control_plane.providers.base import BackupPart, ProviderError
from control_plane.providers.data_copy import CHUNK, Meter
from infra.conventions import MANAGED_BY, S3, TAG_MANAGED_BY, backup_bucket, bucket_arn, s3_tagging, tls_only_policy

PART_SIZE = 16 << 20
"""Bytes per multipart part (S3 wants at least 5 MiB for every part but the last)."""
ENSURE_SECONDS = 3600.0
"""How long a process trusts a bucket it ensured before it ensures it again."""
ABORT_UPLOADS_AFTER_DAYS = 1
BUCKET_TAGS = {TAG_MANAGED_BY: MANAGED_BY, "canopy:purpose": "backups"}


def upload(s3: Any, bucket: str, key: str, kms_key_arn: str, chunks: Iterable[bytes]) -> None:
    """Store ``chunks`` as object ``key`` under SSE-KMS with ``kms_key_arn``: one ``put_object`` up to
    :data:`PART_SIZE`, else a multipart upload that is aborted if anything fails (no half-written object)."""
    sse = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_arn}
    upload_id: str | None = None
    parts: list[dict[str, Any]] = []
    buffer = bytearray()

    def send() -> None:
        number = len(parts) + 1
        answer = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=bytes(buffer))
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})
        buffer.clear()

    try:
        for chunk in chunks:
            buffer += chunk
            if len(buffer) >= PART_SIZE:
                if upload_id is None:
                    upload_id = str(s3.create_multipart_upload(Bucket=bucket, Key=key, **sse)["UploadId"])
                send()
        if upload_id is None:
            s3.put_object(Bucket=bucket, Key=key, Body=bytes(buffer), **sse)
            return
        if buffer:
            send()
        s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
    except BaseException:
        if upload_id is not None:
            with tolerating("NoSuchUpload"):
                s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        raise


class BackupBucket:
    """The backup bucket of each region for one environment (the account id is read once, through STS)."""

    def __init__(self, aws: Aws, env: str) -> None:
        self._aws = aws
        self._env = env
        self._names = Expiring(self._name, ENSURE_SECONDS)
        self._buckets = Expiring(self._ensure, ENSURE_SECONDS)

    def _s3(self, region: str) -> Any:
        return self._aws.client("s3", region)

    def bucket(self, region: str) -> str:
        """The name of the region's backup bucket, ensured."""
        return self._buckets(region)

    def _name(self, region: str) -> str:
        account = str(self._aws.client("sts", region).get_caller_identity()["Account"])
        return backup_bucket(self._env, region, account)

    def _ensure(self, region: str) -> str:
        name = self._names(region)
        s3 = self._s3(region)
        location = {} if region == "us-east-1" else {"LocationConstraint": region}
        with tolerating("BucketAlreadyOwnedByYou"):
            s3.create_bucket(Bucket=name, CreateBucketConfiguration=location, ObjectOwnership=S3.object_ownership)
        s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=S3.public_access_block())
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration=S3.encryption_configuration(None))
        s3.put_bucket_lifecycle_configuration(
            Bucket=name,
            LifecycleConfiguration={
                "Rules": [
                    {
                        "ID": "abort-incomplete-uploads",
                        "Status": "Enabled",
                        "Filter": {"Prefix": ""},
                        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_UPLOADS_AFTER_DAYS},
                    }
                ]
            },
        )
        s3.put_bucket_policy(Bucket=name, Policy=json.dumps(tls_only_policy(bucket_arn(name))))
        s3.put_bucket_tagging(Bucket=name, Tagging=s3_tagging(BUCKET_TAGS))
        return name

    # -- objects --------------------------------------------------------------------------------

    def write(
        self, name: str, region: str, key: str, kms_key_arn: str, chunks: Iterable[bytes], count: int | None = None
    ) -> BackupPart:
        """Store ``chunks`` as ``key`` under ``kms_key_arn``; the part records where, its size and SHA-256, and
        ``count`` (what it holds)."""
        bucket = self.bucket(region)
        meter = Meter()
        upload(self._s3(region), bucket, key, kms_key_arn, meter.wrap(chunks))
        location = {"bucket": bucket, "key": key, "region": region, "kms_key_arn": kms_key_arn}
        return BackupPart(name, location, meter.size, meter.sha256, count)

    def read(self, part: BackupPart) -> Iterator[bytes]:
        """The part's bytes, :data:`CHUNK` at a time; ProviderError when the object is missing."""
        where = part.location
        try:
            body = self._s3(where["region"]).get_object(Bucket=where["bucket"], Key=where["key"])["Body"]
        except ClientError as exc:
            if error_code(exc) in ("NoSuchKey", "404"):
                raise ProviderError(f"backup object {where['key']} is missing") from None
            raise
        try:
            yield from body.iter_chunks(CHUNK)
        finally:
            body.close()

    def check(self, part: BackupPart) -> str | None:
        """None when the object is there under its key with the part's size and SHA-256, else what is wrong."""
        where = part.location
        s3 = self._s3(where["region"])
        try:
            head = s3.head_object(Bucket=where["bucket"], Key=where["key"])
        except ClientError as exc:
            if error_code(exc) in ("NoSuchKey", "404"):
                return f"backup object {where['key']} is missing"
            raise
        if head.get("ServerSideEncryption") != "aws:kms" or head.get("SSEKMSKeyId") != where["kms_key_arn"]:
            return f"backup object {where['key']} is not encrypted with the workspace's key"
        meter = Meter()
        for _ in meter.wrap(self.read(part)):
            pass
        if meter.size != part.size:
            return f"backup object {where['key']} holds {meter.size} bytes, not {part.size}"
        if meter.sha256 != part.sha256:
            return f"backup object {where['key']} fails its SHA-256 check"
        return None

    def delete(self, part: BackupPart) -> None:
        """Remove the part's object (idempotent)."""
        where = part.location
        with tolerating("NoSuchKey", "NoSuchBucket"):
            self._s3(where["region"]).delete_object(Bucket=where["bucket"], Key=where["key"])

    def holds(self, region: str, prefix: str) -> bool:
        """Whether any object is left under ``prefix`` in the region's backup bucket (none without the bucket)."""
        s3 = self._s3(region)
        page = absent(lambda: s3.list_objects_v2(Bucket=self._names(region), Prefix=prefix, MaxKeys=1), "NoSuchBucket")
        return bool(page and page.get("Contents"))
