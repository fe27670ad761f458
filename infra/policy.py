"""Security policy checks over resource records (type token, name, inputs), as captured by Pulumi's mocks.

Inputs use the engine's property names (``storageEncrypted``, ``vpcConfig``...), the same names a Pulumi
CrossGuard policy pack sees in ``args.props``; each check here could become a ``ResourceValidationPolicy``
or a ``StackValidationPolicy`` (those that relate resources, e.g. a bucket and its encryption) of such a
pack later. Nothing here imports pulumi.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from infra.conventions import (
    CELL_TAG_KEYS,
    MANAGED_BY,
    RDS,
    TAG_CELL,
    TAG_MANAGED_BY,
    TAG_TIER,
    TAG_WORKSPACE,
    TIER_ENTERPRISE,
    WORKSPACE_TAG_KEYS,
)
from infra.ingress import load_balancer_problems


@dataclass(frozen=True)
class ResourceRecord:
    """One registered resource; ``id`` is what other resources' inputs refer to it by."""

    type: str
    name: str
    inputs: Mapping[str, Any]
    id: str = ""


@dataclass(frozen=True)
class Violation:
    """A rule a resource breaks."""

    rule: str
    resource_type: str
    resource_name: str
    message: str


BUCKET_TYPES = frozenset({"aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2"})
BUCKET_SSE_TYPES = frozenset(
    {
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
    }
)
BUCKET_VERSIONING_TYPES = frozenset(
    {"aws:s3/bucketVersioning:BucketVersioning", "aws:s3/bucketVersioningV2:BucketVersioningV2"}
)
BUCKET_PAB_TYPE = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
BUCKET_POLICY_TYPE = "aws:s3/bucketPolicy:BucketPolicy"
RDS_CLUSTER_TYPE = "aws:rds/cluster:Cluster"
RDS_INSTANCE_TYPE = "aws:rds/instance:Instance"
RDS_CLUSTER_INSTANCE_TYPE = "aws:rds/clusterInstance:ClusterInstance"
RDS_SUBNET_GROUP_TYPE = "aws:rds/subnetGroup:SubnetGroup"
SUBNET_TYPE = "aws:ec2/subnet:Subnet"
EKS_CLUSTER_TYPE = "aws:eks/cluster:Cluster"
EKS_NODEGROUP_TYPE = "aws:eks/nodeGroup:NodeGroup"
KMS_KEY_TYPE = "aws:kms/key:Key"

KUBERNETES_SERVICE_TYPE = "kubernetes:core/v1:Service"
TAGGABLE_TYPES = frozenset(
    {
        *BUCKET_TYPES,
        RDS_CLUSTER_TYPE,
        RDS_INSTANCE_TYPE,
        RDS_CLUSTER_INSTANCE_TYPE,
        RDS_SUBNET_GROUP_TYPE,
        SUBNET_TYPE,
        EKS_CLUSTER_TYPE,
        EKS_NODEGROUP_TYPE,
        KMS_KEY_TYPE,
        "aws:acm/certificate:Certificate",
        "aws:ec2/vpc:Vpc",
        "aws:ec2/internetGateway:InternetGateway",
        "aws:ec2/eip:Eip",
        "aws:ec2/natGateway:NatGateway",
        "aws:ec2/routeTable:RouteTable",
        "aws:ec2/securityGroup:SecurityGroup",
        "aws:eks/accessEntry:AccessEntry",
        "aws:route53/zone:Zone",
        "aws:iam/role:Role",
        "aws:iam/policy:Policy",
        "aws:iam/openIdConnectProvider:OpenIdConnectProvider",
        "aws:secretsmanager/secret:Secret",
    }
)
"""Resource types that take ``tags`` (the tests hold this against pulumi-aws for every type the cell uses)."""


def check_resources(resources: Iterable[ResourceRecord]) -> list[Violation]:
    """Every violation of the Canopy security rules among ``resources`` (empty when all hold)."""
    records = list(resources)
    violations: list[Violation] = []
    for record in records:
        violations += _check_tags(record)
        violations += _check_one(record)
    violations += _check_buckets(records)
    violations += _check_private_subnets(records)
    return violations


def _violation(record: ResourceRecord, rule: str, message: str) -> Violation:
    return Violation(rule, record.type, record.name, message)


def _check_tags(record: ResourceRecord) -> list[Violation]:
    if record.type not in TAGGABLE_TYPES:
        return []
    tags = record.inputs.get("tags") or {}
    required = WORKSPACE_TAG_KEYS if TAG_WORKSPACE in tags else CELL_TAG_KEYS
    missing = [key for key in required if not tags.get(key)]
    if TAG_CELL in missing and TAG_CELL in tags and tags.get(TAG_TIER) == TIER_ENTERPRISE:
        missing.remove(TAG_CELL)  # a silo outside any cell
    found = [] if not missing else [_violation(record, "tags", f"missing tags: {', '.join(missing)}")]
    if tags.get(TAG_MANAGED_BY, MANAGED_BY) != MANAGED_BY:
        found.append(_violation(record, "tags", f"{TAG_MANAGED_BY} is not {MANAGED_BY!r}"))
    return found


def _check_one(record: ResourceRecord) -> list[Violation]:
    inputs = record.inputs
    found: list[tuple[str, str]] = []
    if record.type in (RDS_CLUSTER_TYPE, RDS_INSTANCE_TYPE):
        if inputs.get("storageEncrypted") is not True:
            found.append(("rds-encryption", "storage is not encrypted"))
        if inputs.get("deletionProtection") is not True:
            found.append(("rds-deletion-protection", "deletion protection is off"))
        if (inputs.get("backupRetentionPeriod") or 0) < RDS.backup_retention_days:
            found.append(("rds-backups", f"backups are kept fewer than {RDS.backup_retention_days} days"))
        if inputs.get("masterPassword") or inputs.get("manageMasterUserPassword") is not True:
            found.append(("rds-managed-password", "the master password is not managed by RDS in Secrets Manager"))
    if record.type in (RDS_CLUSTER_TYPE, RDS_INSTANCE_TYPE, RDS_CLUSTER_INSTANCE_TYPE) and inputs.get(
        "publiclyAccessible"
    ):
        found.append(("rds-public", "the database is publicly accessible"))
    if record.type == EKS_CLUSTER_TYPE:
        found += _eks_problems(inputs)
    if record.type == KMS_KEY_TYPE and inputs.get("enableKeyRotation") is not True:
        found.append(("kms-rotation", "key rotation is off"))
    if record.type == KUBERNETES_SERVICE_TYPE:
        found += [("load-balancer-tls", problem) for problem in load_balancer_problems(inputs)]
    return [_violation(record, rule, message) for rule, message in found]


def _eks_problems(inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    encryption = inputs.get("encryptionConfig") or {}
    if "secrets" not in (encryption.get("resources") or []) or not (encryption.get("provider") or {}).get("keyArn"):
        found.append(("eks-secrets-encryption", "Kubernetes secrets are not encrypted with a KMS key"))
    vpc = inputs.get("vpcConfig") or {}
    if vpc.get("endpointPrivateAccess") is not True:
        found.append(("eks-private-endpoint", "the API endpoint is not reachable privately"))
    cidrs = vpc.get("publicAccessCidrs") or []
    if vpc.get("endpointPublicAccess") is not False and (not cidrs or "0.0.0.0/0" in cidrs):
        found.append(("eks-private-endpoint", "the API endpoint is public to the whole internet"))
    return found


def _bucket_keys(record: ResourceRecord) -> set[str]:
    return {key for key in (record.id, record.inputs.get("bucket")) if key}


def _by_bucket(records: Sequence[ResourceRecord], types: Iterable[str]) -> dict[str, Mapping[str, Any]]:
    wanted = set(types)
    return {r.inputs["bucket"]: r.inputs for r in records if r.type in wanted and r.inputs.get("bucket")}


def _check_buckets(records: Sequence[ResourceRecord]) -> list[Violation]:
    sse = _by_bucket(records, BUCKET_SSE_TYPES)
    versioning = _by_bucket(records, BUCKET_VERSIONING_TYPES)
    pab = _by_bucket(records, [BUCKET_PAB_TYPE])
    policies = _by_bucket(records, [BUCKET_POLICY_TYPE])
    found: list[Violation] = []
    for bucket in (r for r in records if r.type in BUCKET_TYPES):
        keys = _bucket_keys(bucket)

        def find(by_bucket: dict[str, Mapping[str, Any]], keys: set[str] = keys) -> Mapping[str, Any]:
            return next((by_bucket[k] for k in keys if k in by_bucket), {})

        encryption = find(sse).get("rules") or (bucket.inputs.get("serverSideEncryptionConfiguration") or {}).get(
            "rules"
        )
        if not _sse_kms(encryption or []):
            found.append(_violation(bucket, "s3-encryption", "objects are not encrypted with SSE-KMS and a bucket key"))
        status = (find(versioning).get("versioningConfiguration") or {}).get("status")
        if status != "Enabled" and (bucket.inputs.get("versioning") or {}).get("enabled") is not True:
            found.append(_violation(bucket, "s3-versioning", "versioning is not enabled"))
        block = find(pab)
        flags = ("blockPublicAcls", "ignorePublicAcls", "blockPublicPolicy", "restrictPublicBuckets")
        off = [flag for flag in flags if block.get(flag) is not True]
        if off:
            found.append(_violation(bucket, "s3-public-access-block", f"public access not blocked: {', '.join(off)}"))
        if not _denies_plain_http(find(policies).get("policy")):
            found.append(_violation(bucket, "s3-tls-only", "the bucket policy does not deny plain HTTP"))
    return found


def _sse_kms(rules: Sequence[Mapping[str, Any]]) -> bool:
    for rule in rules:
        default = rule.get("applyServerSideEncryptionByDefault") or {}
        if default.get("sseAlgorithm") == "aws:kms" and default.get("kmsMasterKeyId") and rule.get("bucketKeyEnabled"):
            return True
    return False


def _denies_plain_http(policy: Any) -> bool:
    document = json.loads(policy) if isinstance(policy, str) else policy or {}
    return any(
        statement.get("Effect") == "Deny"
        and str(((statement.get("Condition") or {}).get("Bool") or {}).get("aws:SecureTransport")).lower() == "false"
        for statement in document.get("Statement", [])
    )


def _check_private_subnets(records: Sequence[ResourceRecord]) -> list[Violation]:
    used: set[str] = set()
    for record in records:
        if record.type in (RDS_SUBNET_GROUP_TYPE, EKS_NODEGROUP_TYPE):
            used.update(record.inputs.get("subnetIds") or [])
        elif record.type == EKS_CLUSTER_TYPE:
            used.update((record.inputs.get("vpcConfig") or {}).get("subnetIds") or [])
    return [
        _violation(subnet, "subnet-public-ip", "a subnet of databases or nodes maps public IPs on launch")
        for subnet in records
        if subnet.type == SUBNET_TYPE and subnet.id in used and subnet.inputs.get("mapPublicIpOnLaunch")
    ]
