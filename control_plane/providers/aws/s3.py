"""Files: a bucket per enterprise silo, a prefix of the cell's shared bucket per pooled workspace."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from control_plane.providers.aws.common import (
    Aws,
    CellLookup,
    SiloConfig,
    arn_parts,
    cell_of,
    error_code,
    tags_of,
    tolerating,
)
from control_plane.providers.aws.iam import canopy_policies, delete_policy, ensure_policy, policy_arn, policy_exists
from control_plane.providers.aws.kms import SiloKms
from control_plane.providers.base import Cursors, Drift, Ensured, ProviderError, Watched, WorkspaceSpec
from infra.conventions import (
    S3,
    CellOutputs,
    bucket_arn,
    prefix_policy,
    s3_tagging,
    tls_only_policy,
    workspace_names,
)


def delete_versions(s3: Any, bucket: str, prefix: str = "") -> None:
    """Delete every object version and delete marker under ``prefix`` (the whole bucket by default)."""
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        doomed = [
            {"Key": item["Key"], "VersionId": item["VersionId"]}
            for item in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        if doomed:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed, "Quiet": True})


def has_objects(s3: Any, bucket: str, prefix: str) -> bool:
    """Whether any object version or delete marker is left under ``prefix``."""
    page = s3.list_object_versions(Bucket=bucket, Prefix=prefix, MaxKeys=1)
    return bool(page.get("Versions") or page.get("DeleteMarkers"))


CONFIG_BATCH = 100
"""Resource keys per ``BatchGetResourceConfig`` call (AWS Config's limit)."""
PUBLIC_ACCESS_FIELDS = ("blockPublicAcls", "ignorePublicAcls", "blockPublicPolicy", "restrictPublicBuckets")
GONE_STATUSES = frozenset({"ResourceDeleted", "ResourceDeletedNotRecorded", "ResourceNotRecorded"})


def _decoded(value: Any) -> dict[str, Any]:
    """A supplementary configuration value: JSON in a string (sometimes twice), or already a mapping."""
    while isinstance(value, str):
        value = json.loads(value) if value else {}
    return value if isinstance(value, dict) else {}


def bucket_drift(item: dict[str, Any] | None) -> str | None:
    """What is wrong with a bucket, from its AWS Config item: gone, not under SSE-KMS, or open to the public."""
    if item is None or item.get("configurationItemStatus") in GONE_STATUSES:
        return "is gone"
    extra = item.get("supplementaryConfiguration") or {}
    rules = _decoded(extra.get("ServerSideEncryptionConfiguration")).get("rules") or []
    algorithms = {(rule.get("applyServerSideEncryptionByDefault") or {}).get("sseAlgorithm") for rule in rules}
    if S3.sse_algorithm not in algorithms:
        return f"is not encrypted with {S3.sse_algorithm}"
    block = _decoded(extra.get("PublicAccessBlockConfiguration"))
    if not all(block.get(name) for name in PUBLIC_ACCESS_FIELDS):
        return "allows public access"
    return None


def config_items(config: Any, buckets: list[str]) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """AWS Config's items of ``buckets`` (by name), :data:`CONFIG_BATCH` a call, and the names it left unprocessed."""
    items: dict[str, dict[str, Any]] = {}
    unprocessed: set[str] = set()
    for start in range(0, len(buckets), CONFIG_BATCH):
        keys = [
            {"resourceType": "AWS::S3::Bucket", "resourceId": name} for name in buckets[start : start + CONFIG_BATCH]
        ]
        answer = config.batch_get_resource_config(resourceKeys=keys)
        items.update({item["resourceId"]: item for item in answer.get("baseConfigurationItems", [])})
        unprocessed.update(key["resourceId"] for key in answer.get("unprocessedResourceKeys", []))
    return items, unprocessed


class SiloStorage:
    """The silo's own bucket ``canopy-<env>-<short id>``: SSE-KMS under the tenant key with a bucket key,
    versioning, every public access blocked, ACLs disabled, TLS-only policy, tags (re-applied on every ensure).
    """

    def __init__(self, aws: Aws, config: SiloConfig, kms: SiloKms) -> None:
        self._aws = aws
        self._config = config
        self._kms = kms

    def _s3(self) -> Any:
        return self._aws.client("s3", self._config.region)

    def _exists(self, bucket: str) -> bool:
        try:
            self._s3().head_bucket(Bucket=bucket)
        except ClientError as exc:
            if error_code(exc) in ("404", "NoSuchBucket"):
                return False
            if error_code(exc) == "403":
                raise ProviderError(f"bucket {bucket} belongs to another account") from None
            raise
        return True

    def ensure(self, ws: WorkspaceSpec) -> Ensured:
        bucket = self._config.names(ws).bucket
        key_arn = self._kms.key_arn(ws)
        created = () if self._exists(bucket) else self._create(bucket)
        s3 = self._s3()
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=S3.public_access_block())
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=S3.encryption_configuration(key_arn))
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration=S3.versioning_configuration())
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(tls_only_policy(bucket_arn(bucket))))
        s3.put_bucket_tagging(Bucket=bucket, Tagging=s3_tagging(tags_of(ws)))
        outputs = {"bucket": bucket, "bucket_prefix": "", "kms_key_arn": key_arn, "region": self._config.region}
        return Ensured(outputs, created)

    def _create(self, bucket: str) -> tuple[str, ...]:
        location = {} if self._config.region == "us-east-1" else {"LocationConstraint": self._config.region}
        try:
            self._s3().create_bucket(
                Bucket=bucket, CreateBucketConfiguration=location, ObjectOwnership=S3.object_ownership
            )
        except ClientError as exc:
            if error_code(exc) == "BucketAlreadyOwnedByYou":
                return ()
            raise
        return ("bucket",)

    def teardown(self, ws: WorkspaceSpec) -> None:
        bucket = self._config.names(ws).bucket
        if self._exists(bucket):
            delete_versions(self._s3(), bucket)
            with tolerating("NoSuchBucket"):
                self._s3().delete_bucket(Bucket=bucket)

    def leftovers(self, ws: WorkspaceSpec) -> list[str]:
        bucket = self._config.names(ws).bucket
        return [f"s3 bucket {bucket}"] if self._exists(bucket) else []

    def find_drift(self, watched: Sequence[Watched], cursors: Cursors) -> list[Drift]:
        """The silos' buckets as AWS Config recorded them, a hundred a call (:func:`bucket_drift`); a bucket AWS
        Config left unprocessed is read at the next detection."""
        buckets = {self._config.names(item.spec).bucket: item.spec.id for item in watched}
        items, unprocessed = config_items(self._aws.client("config", self._config.region), list(buckets))
        found = []
        for bucket, ws_id in buckets.items():
            reason = None if bucket in unprocessed else bucket_drift(items.get(bucket))
            if reason:
                found.append(Drift(ws_id, "s3", f"bucket {bucket} {reason}"))
        return found


class PooledStorage:
    """``workspaces/<short id>/`` in the cell's shared bucket, and an IAM policy (under ``/canopy/``,
    tagged) that allows exactly that prefix and the cell key through S3, for the workspace's pods.
    """

    def __init__(self, aws: Aws, env: str, cells: CellLookup) -> None:
        self._aws = aws
        self._env = env
        self._cells = cells

    def _policy_arn(self, cell: CellOutputs, name: str) -> str:
        partition, account = arn_parts(cell.control_plane_role_arn)
        return policy_arn(partition, account, name)

    def _document(self, ws: WorkspaceSpec, cell: CellOutputs) -> dict[str, Any]:
        partition, _ = arn_parts(cell.control_plane_role_arn)
        prefix = workspace_names(self._env, ws.id).pooled_prefix
        return prefix_policy(bucket_arn(cell.bucket_name, partition), prefix, cell.kms_key_arn)

    def ensure(self, ws: WorkspaceSpec) -> Ensured:
        cell = cell_of(self._cells, ws)
        names = workspace_names(self._env, ws.id)
        arn = self._policy_arn(cell, names.storage_policy)
        created = ensure_policy(self._aws.client("iam", cell.region), ws, arn, self._document(ws, cell))
        outputs = {
            "bucket": cell.bucket_name,
            "bucket_prefix": names.pooled_prefix,
            "kms_key_arn": cell.kms_key_arn,
            "region": cell.region,
            "storage_policy_arn": arn,
        }
        return Ensured(outputs, ("storage_policy",) if created else ())

    def teardown(self, ws: WorkspaceSpec) -> None:
        cell = cell_of(self._cells, ws)
        names = workspace_names(self._env, ws.id)
        delete_versions(self._aws.client("s3", cell.region), cell.bucket_name, names.pooled_prefix)
        delete_policy(self._aws.client("iam", cell.region), self._policy_arn(cell, names.storage_policy))

    def leftovers(self, ws: WorkspaceSpec) -> list[str]:
        cell = cell_of(self._cells, ws)
        names = workspace_names(self._env, ws.id)
        arn = self._policy_arn(cell, names.storage_policy)
        found = [f"iam policy {arn}"] if policy_exists(self._aws.client("iam", cell.region), arn) else []
        if has_objects(self._aws.client("s3", cell.region), cell.bucket_name, names.pooled_prefix):
            found.append(f"objects under s3://{cell.bucket_name}/{names.pooled_prefix}")
        return found

    def find_drift(self, watched: Sequence[Watched], cursors: Cursors) -> list[Drift]:
        """One listing of Canopy's IAM policies: a workspace whose storage policy is gone, or was given a new
        version after its plan last ran."""
        if not watched:
            return []
        region = cell_of(self._cells, watched[0].spec).region
        policies = {p["PolicyName"]: p for p in canopy_policies(self._aws.client("iam", region))}
        found = []
        for item in watched:
            name = workspace_names(self._env, item.spec.id).storage_policy
            policy = policies.get(name)
            if policy is None:
                found.append(Drift(item.spec.id, "iam", f"storage policy {name} is gone"))
            elif policy["UpdateDate"] > item.verified_at:
                found.append(Drift(item.spec.id, "iam", f"storage policy {name} was changed"))
        return found
