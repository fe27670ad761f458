"""Names, tags and security settings of every Canopy cloud resource: the one source for both the cell
program (Pulumi) and the control plane's AWS providers (boto3).

Pure Python on purpose (no pulumi, no boto3): importing it costs nothing. Settings are data; the
helpers that return dicts return them in the exact shape the boto3 call (or Kubernetes API) takes.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Final

# --- Tags ------------------------------------------------------------------------------------------

TAG_WORKSPACE: Final = "canopy:workspace"
TAG_ORG: Final = "canopy:org"
TAG_TIER: Final = "canopy:tier"
TAG_CELL: Final = "canopy:cell"
TAG_MANAGED_BY: Final = "canopy:managed-by"
MANAGED_BY: Final = "canopy"
TAG_KEPT_FOR: Final = "canopy:kept-for"
KEPT_FOR_BACKUPS: Final = "backups"
TAG_DRILL_OF: Final = "canopy:drill-of"
"""``canopy:drill-of`` = a workspace id: a restore drill's scratch resource restored from that workspace's backup
(its ``canopy:workspace`` is the drill's own scratch id, so the workspace's leak sweep never counts it)."""
"""``canopy:kept-for`` = ``backups``: a deleted silo's key, left enabled because its backups are encrypted with it."""

WORKSPACE_TAG_KEYS: Final = (TAG_WORKSPACE, TAG_ORG, TAG_TIER, TAG_CELL, TAG_MANAGED_BY)
CELL_TAG_KEYS: Final = (TAG_CELL, TAG_MANAGED_BY)

TIER_ENTERPRISE: Final = "enterprise"
TIER_PROFESSIONAL: Final = "professional"
TIERS: Final = (TIER_ENTERPRISE, TIER_PROFESSIONAL)

_TAG_KEY_RE = re.compile(r"^[\w\s.:/=+\-@]{1,128}$")
_TAG_VALUE_RE = re.compile(r"^[\w\s.:/=+\-@]{0,256}$")


def _check_tags(tags: Mapping[str, str]) -> dict[str, str]:
    for key, value in tags.items():
        if not _TAG_KEY_RE.match(key) or key.lower().startswith("aws:"):
            raise ValueError(f"invalid tag key {key!r}")
        if not _TAG_VALUE_RE.match(value):
            raise ValueError(f"invalid value {value!r} for tag {key!r}")
    return dict(tags)


def workspace_tags(
    workspace_id: uuid.UUID | str, org_id: uuid.UUID | str, tier: str, cell: str | None
) -> dict[str, str]:
    """Tags every resource of a workspace carries (``canopy:cell`` is empty for a silo outside any cell)."""
    if tier not in TIERS:
        raise ValueError(f"unknown tier {tier!r} (expected one of {', '.join(TIERS)})")
    if cell:
        validate_cell_name(cell)
    return _check_tags(
        {
            TAG_WORKSPACE: str(uuid.UUID(str(workspace_id))),
            TAG_ORG: str(org_id),
            TAG_TIER: tier,
            TAG_CELL: cell or "",
            TAG_MANAGED_BY: MANAGED_BY,
        }
    )


def cell_tags(cell: str) -> dict[str, str]:
    """Tags every shared resource of a cell carries (no ``canopy:workspace``: no workspace owns it)."""
    return {TAG_CELL: validate_cell_name(cell), TAG_MANAGED_BY: MANAGED_BY}


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    """``[{"Key", "Value"}]``: RDS, Secrets Manager, IAM, EC2, Route53 ``AddTags`` and S3 ``TagSet``."""
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def kms_tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    """``[{"TagKey", "TagValue"}]``: KMS ``create_key`` / ``tag_resource``."""
    return [{"TagKey": key, "TagValue": value} for key, value in tags.items()]


def eks_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """A plain ``{key: value}`` map: EKS ``create_cluster`` / ``create_nodegroup`` / ``tag_resource``."""
    return dict(tags)


def s3_tagging(tags: Mapping[str, str]) -> dict[str, list[dict[str, str]]]:
    """``Tagging=`` of S3 ``put_bucket_tagging`` (replaces the whole tag set)."""
    return {"TagSet": tag_list(tags)}


def route53_tag_request(zone_id: str, tags: Mapping[str, str]) -> dict[str, Any]:
    """Keyword arguments of Route53 ``change_tags_for_resource`` for a hosted zone (at most 10 tags)."""
    return {"ResourceType": "hostedzone", "ResourceId": zone_id.removeprefix("/hostedzone/"), "AddTags": tag_list(tags)}


def tags_from_list(items: Iterable[Mapping[str, str]]) -> dict[str, str]:
    """Back from either list shape (``Key``/``Value`` or KMS ``TagKey``/``TagValue``) to a dict."""
    return {item.get("Key", item.get("TagKey", "")): item.get("Value", item.get("TagValue", "")) for item in items}


def tag_filters(tags: Mapping[str, str]) -> list[dict[str, Any]]:
    """``TagFilters=`` of Resource Groups Tagging API ``get_resources`` (the leak sweep)."""
    return [{"Key": key, "Values": [value]} for key, value in tags.items()]


def kubernetes_labels(tags: Mapping[str, str]) -> dict[str, str]:
    """Canopy tags as Kubernetes labels (``canopy:x`` -> ``canopy/x``; a ``:`` is not allowed in a label key)."""
    labels = {key.replace(":", "/", 1): value for key, value in tags.items() if key != TAG_MANAGED_BY}
    if tags.get(TAG_MANAGED_BY):
        labels["app.kubernetes.io/managed-by"] = tags[TAG_MANAGED_BY]
    return labels


# --- Names -----------------------------------------------------------------------------------------

_ENV_RE = re.compile(r"^[a-z][a-z0-9]{0,9}$")
_CELL_RE = re.compile(r"^[a-z](?:[a-z0-9-]{0,18}[a-z0-9])?$")
_SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_DOMAIN_RE = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_ACCOUNT_RE = re.compile(r"^\d{12}$")
_REGION_RE = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d$")
IAM_PATH: Final = "/canopy/"
POOLED_PREFIX_ROOT: Final = "workspaces/"
BACKUP_PREFIX_ROOT: Final = "backups/"
WORKSPACE_SERVICE_ACCOUNT: Final = "workspace-server"
"""The Kubernetes service account the workspace server's pods run as (in the workspace's namespace)."""
STS_AUDIENCE: Final = "sts.amazonaws.com"
"""The client id of the clusters' IAM OIDC providers: the audience of the pods' projected tokens."""


def validate_env(env: str) -> str:
    """A deployment environment (``prod``, ``staging``): 1-10 lowercase letters/digits, starting with a letter."""
    if not _ENV_RE.match(env):
        raise ValueError(f"invalid environment {env!r}: 1-10 lowercase letters or digits, starting with a letter")
    return env


def validate_cell_name(cell: str) -> str:
    """A cell name: 1-20 lowercase letters, digits and single hyphens, starting with a letter."""
    if not _CELL_RE.match(cell) or "--" in cell:
        raise ValueError(
            f"invalid cell name {cell!r}: 1-20 lowercase letters, digits and single hyphens, starting with a letter"
        )
    return cell


def validate_region(region: str) -> str:
    """An AWS region name (``eu-west-1``, ``us-gov-west-1``)."""
    if not _REGION_RE.match(region):
        raise ValueError(f"{region!r} is not an AWS region")
    return region


def validate_domain(domain: str) -> str:
    """A lowercase DNS name with at least two labels (``example.com``)."""
    if not _DOMAIN_RE.match(domain):
        raise ValueError(f"invalid domain {domain!r}")
    return domain


def short_id(workspace_id: uuid.UUID | str) -> str:
    """12 hex digits of the workspace id: unique enough, short enough for every AWS name limit."""
    return uuid.UUID(str(workspace_id)).hex[:12]


def workspace_hostname(slug: str, domain: str) -> str:
    """``<slug>.<domain>``, the public name of a workspace."""
    if not _SLUG_RE.match(slug) or "--" in slug:
        raise ValueError(f"invalid workspace slug {slug!r}")
    return f"{slug}.{validate_domain(domain)}"


def bucket_arn(bucket: str, partition: str = "aws") -> str:
    """The ARN of an S3 bucket."""
    return f"arn:{partition}:s3:::{bucket}"


@dataclass(frozen=True)
class WorkspaceNames:
    """Deterministic names of one workspace's resources: the keys of create-or-adopt and of the leak sweep."""

    bucket: str
    kms_alias: str
    rds_instance: str
    db_subnet_group: str
    db_security_group: str
    secret: str
    eks_cluster: str
    eks_nodegroup: str
    cluster_role: str
    node_role: str
    app_role: str
    storage_policy: str
    namespace: str
    pooled_database: str
    pooled_role: str
    pooled_prefix: str


def workspace_names(env: str, workspace_id: uuid.UUID | str) -> WorkspaceNames:
    """Names of the silo (bucket .. node role) and pooled (namespace .. prefix) resources of a workspace.

    IAM roles and policies live under :data:`IAM_PATH`; the silo bucket is ``canopy-<env>-<short id>``.
    """
    sid = short_id(workspace_id)
    base = f"canopy-{validate_env(env)}-{sid}"
    return WorkspaceNames(
        bucket=base,
        kms_alias=f"alias/canopy/{env}/{sid}",
        rds_instance=base,
        db_subnet_group=base,
        db_security_group=f"{base}-db",
        secret=f"canopy/{env}/{sid}/database",
        eks_cluster=base,
        eks_nodegroup=f"{base}-nodes",
        cluster_role=f"{base}-cluster",
        node_role=f"{base}-node",
        app_role=f"{base}-app",
        storage_policy=f"{base}-files",
        namespace=f"ws-{sid}",
        pooled_database=f"ws_{sid}",
        pooled_role=f"ws_{sid}",
        pooled_prefix=f"{POOLED_PREFIX_ROOT}{sid}/",
    )


def backup_bucket(env: str, region: str, account_id: str) -> str:
    """The backup bucket of an environment in a region: ``canopy-<env>-backups-<region>-<account id>`` (the account
    id keeps the global S3 name ours; at most 7 + 10 + 9 + 14 + 1 + 12 = 53 characters)."""
    if not _ACCOUNT_RE.match(account_id):
        raise ValueError(f"invalid AWS account id {account_id!r}")
    return f"canopy-{validate_env(env)}-backups-{validate_region(region)}-{account_id}"


def backup_prefix(workspace_id: uuid.UUID | str) -> str:
    """``backups/<short id>/``: every backup object of a workspace in the backup bucket."""
    return f"{BACKUP_PREFIX_ROOT}{short_id(workspace_id)}/"


def backup_object_key(workspace_id: uuid.UUID | str, backup_id: uuid.UUID, part: str) -> str:
    """``backups/<short id>/<backup id>/<part>`` (``database.dump``, ``files.tar``)."""
    return f"{backup_prefix(workspace_id)}{backup_id}/{part}"


def backup_snapshot(env: str, workspace_id: uuid.UUID | str, backup_id: uuid.UUID) -> str:
    """The RDS snapshot of a silo backup: ``canopy-<env>-<short id>-backup-<backup id hex>``."""
    return f"{workspace_names(env, workspace_id).rds_instance}-backup-{backup_id.hex}"


def drill_instance(env: str, workspace_id: uuid.UUID | str, scratch_id: uuid.UUID | str) -> str:
    """The scratch RDS instance a restore drill restores a silo snapshot into:
    ``canopy-<env>-<short id>-drill-<scratch short id>`` (at most 7 + 10 + 13 + 7 + 12 = 49 characters)."""
    return f"{workspace_names(env, workspace_id).rds_instance}-drill-{short_id(scratch_id)}"


@dataclass(frozen=True)
class CellNames:
    """Physical names of a cell's shared resources (``canopy-cell-<cell>...``)."""

    prefix: str
    cluster: str
    nodegroup: str
    database: str
    db_subnet_group: str
    db_security_group: str
    kms_alias: str
    cluster_role: str
    node_role: str
    control_plane_role: str

    def bucket(self, account_id: str) -> str:
        """The shared bucket; the account id keeps the global S3 name ours across installations."""
        if not _ACCOUNT_RE.match(account_id):
            raise ValueError(f"invalid AWS account id {account_id!r}")
        return f"{self.prefix}-{account_id}"


def cell_names(cell: str) -> CellNames:
    """Names of the shared resources of cell ``cell``."""
    prefix = f"canopy-cell-{validate_cell_name(cell)}"
    return CellNames(
        prefix=prefix,
        cluster=prefix,
        nodegroup=f"{prefix}-nodes",
        database=prefix,
        db_subnet_group=f"{prefix}-db",
        db_security_group=f"{prefix}-db",
        kms_alias=f"alias/canopy/cell/{cell}",
        cluster_role=f"{prefix}-cluster",
        node_role=f"{prefix}-node",
        control_plane_role=f"{prefix}-control-plane",
    )


# --- Security settings -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RdsSettings:
    """RDS PostgreSQL (silo) and Aurora PostgreSQL (cell) settings."""

    engine: str = "postgres"
    engine_version: str = "16.6"
    aurora_engine: str = "aurora-postgresql"
    aurora_engine_version: str = "16.6"
    port: int = 5432
    master_username: str = "canopy_admin"
    manage_master_user_password: bool = True
    storage_encrypted: bool = True
    deletion_protection: bool = True
    backup_retention_days: int = 7
    publicly_accessible: bool = False
    copy_tags_to_snapshot: bool = True
    auto_minor_version_upgrade: bool = True
    storage_type: str = "gp3"
    allocated_storage_gb: int = 50
    instance_classes: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({TIER_ENTERPRISE: "db.m7g.large", TIER_PROFESSIONAL: "db.r7g.large"})
    )

    def instance_class(self, tier: str) -> str:
        """Default instance class: a silo instance (enterprise) or a shared Aurora instance (professional)."""
        return self.instance_classes[tier]


@dataclass(frozen=True)
class S3Settings:
    """Bucket settings: SSE-KMS with a bucket key, versioning, no public access, no ACLs, TLS 1.2+ only."""

    sse_algorithm: str = "aws:kms"
    bucket_key_enabled: bool = True
    versioning_status: str = "Enabled"
    block_public_acls: bool = True
    ignore_public_acls: bool = True
    block_public_policy: bool = True
    restrict_public_buckets: bool = True
    object_ownership: str = "BucketOwnerEnforced"
    min_tls_version: str = "1.2"

    def encryption_configuration(self, kms_key_arn: str | None) -> dict[str, Any]:
        """``ServerSideEncryptionConfiguration=`` of ``put_bucket_encryption`` (no key: S3's AWS managed key)."""
        default = {"SSEAlgorithm": self.sse_algorithm} | ({"KMSMasterKeyID": kms_key_arn} if kms_key_arn else {})
        return {"Rules": [{"ApplyServerSideEncryptionByDefault": default, "BucketKeyEnabled": self.bucket_key_enabled}]}

    def versioning_configuration(self) -> dict[str, str]:
        """``VersioningConfiguration=`` of ``put_bucket_versioning``."""
        return {"Status": self.versioning_status}

    def public_access_block(self) -> dict[str, bool]:
        """``PublicAccessBlockConfiguration=`` of ``put_public_access_block``."""
        return {
            "BlockPublicAcls": self.block_public_acls,
            "IgnorePublicAcls": self.ignore_public_acls,
            "BlockPublicPolicy": self.block_public_policy,
            "RestrictPublicBuckets": self.restrict_public_buckets,
        }


@dataclass(frozen=True)
class KmsSettings:
    """Customer managed keys: symmetric, rotated yearly by AWS."""

    enable_key_rotation: bool = True
    deletion_window_days: int = 30
    key_spec: str = "SYMMETRIC_DEFAULT"
    key_usage: str = "ENCRYPT_DECRYPT"


@dataclass(frozen=True)
class EksSettings:
    """EKS clusters: private API endpoint, Secrets envelope-encrypted with the KMS key, audit logs on."""

    kubernetes_version: str = "1.33"
    endpoint_private_access: bool = True
    endpoint_public_access: bool = False
    encrypted_resources: tuple[str, ...] = ("secrets",)
    cluster_log_types: tuple[str, ...] = ("api", "audit", "authenticator")
    authentication_mode: str = "API"
    ami_type: str = "AL2023_x86_64_STANDARD"
    node_disk_gb: int = 50
    node_instance_types: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({TIER_ENTERPRISE: ("m7i.large",), TIER_PROFESSIONAL: ("m7i.xlarge",)})
    )

    def encryption_config(self, kms_key_arn: str) -> list[dict[str, Any]]:
        """``encryptionConfig=`` of EKS ``create_cluster``."""
        return [{"resources": list(self.encrypted_resources), "provider": {"keyArn": kms_key_arn}}]

    def vpc_config(self, subnet_ids: Iterable[str], security_group_ids: Iterable[str] = ()) -> dict[str, Any]:
        """``resourcesVpcConfig=`` of EKS ``create_cluster`` (private subnets only)."""
        return {
            "subnetIds": list(subnet_ids),
            "securityGroupIds": list(security_group_ids),
            "endpointPrivateAccess": self.endpoint_private_access,
            "endpointPublicAccess": self.endpoint_public_access,
        }


RDS: Final = RdsSettings()
S3: Final = S3Settings()
KMS: Final = KmsSettings()
EKS: Final = EksSettings()


# --- IAM / bucket policy documents -----------------------------------------------------------------


def tls_only_policy(bucket_arn: str) -> dict[str, Any]:
    """Bucket policy denying every request over plain HTTP or TLS older than 1.2."""
    resources = [bucket_arn, f"{bucket_arn}/*"]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": resources,
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
            {
                "Sid": "DenyOutdatedTls",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": resources,
                "Condition": {"NumericLessThan": {"s3:TlsVersion": S3.min_tls_version}},
            },
        ],
    }


_OBJECT_ACTIONS = (
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
)


def prefix_policy(bucket_arn: str, prefix: str, kms_key_arn: str | None = None) -> dict[str, Any]:
    """IAM policy for one pooled workspace: objects under ``prefix`` only, and the bucket key through S3 only.

    ``prefix`` must end with ``/`` so that ``workspaces/abc/`` never matches ``workspaces/abcd/``.
    """
    if not prefix.endswith("/") or prefix.startswith("/") or any(c in prefix for c in "*?$"):
        raise ValueError(f"invalid prefix {prefix!r}: it ends with '/', does not start with one, has no wildcard")
    statements: list[dict[str, Any]] = [
        {
            "Sid": "ObjectsUnderPrefix",
            "Effect": "Allow",
            "Action": list(_OBJECT_ACTIONS),
            "Resource": f"{bucket_arn}/{prefix}*",
        },
        {
            "Sid": "ListPrefix",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": bucket_arn,
            "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}},
        },
    ]
    return {"Version": "2012-10-17", "Statement": [*statements, *_key_through_s3(kms_key_arn)]}


def bucket_policy(bucket_arn: str, kms_key_arn: str | None = None) -> dict[str, Any]:
    """IAM policy for an enterprise silo: every object of its own bucket, and its key through S3 only."""
    statements: list[dict[str, Any]] = [
        {"Sid": "ObjectsOfBucket", "Effect": "Allow", "Action": list(_OBJECT_ACTIONS), "Resource": f"{bucket_arn}/*"},
        {"Sid": "ListBucket", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": bucket_arn},
    ]
    return {"Version": "2012-10-17", "Statement": [*statements, *_key_through_s3(kms_key_arn)]}


def _key_through_s3(kms_key_arn: str | None) -> list[dict[str, Any]]:
    if not kms_key_arn:
        return []
    return [
        {
            "Sid": "BucketKeyThroughS3",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": kms_key_arn,
            "Condition": {"StringLike": {"kms:ViaService": "s3.*.amazonaws.com"}},
        }
    ]


def oidc_issuer(oidc_provider_arn: str) -> str:
    """Host and path of an IAM OIDC provider's issuer (its ARN after ``oidc-provider/``)."""
    _, found, issuer = oidc_provider_arn.partition(":oidc-provider/")
    if not found or not issuer:
        raise ValueError(f"{oidc_provider_arn!r} is not an IAM OIDC provider ARN")
    return issuer


def oidc_provider_arn(partition: str, account_id: str, issuer_url: str) -> str:
    """The ARN IAM gives the OIDC provider of ``issuer_url`` (``https://`` dropped) in ``account_id``."""
    return f"arn:{partition}:iam::{account_id}:oidc-provider/{issuer_url.removeprefix('https://')}"


def web_identity_trust_policy(oidc_provider_arn: str, namespace: str, service_account: str) -> dict[str, Any]:
    """Role trust policy of EKS IAM roles for service accounts: only tokens of ``namespace/service_account``
    issued by the cluster of ``oidc_provider_arn``, for STS, may assume the role."""
    issuer = oidc_issuer(oidc_provider_arn)
    statement = {
        "Effect": "Allow",
        "Principal": {"Federated": oidc_provider_arn},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {
            "StringEquals": {
                f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                f"{issuer}:aud": STS_AUDIENCE,
            }
        },
    }
    return {"Version": "2012-10-17", "Statement": [statement]}


# --- Kubernetes (pooled namespaces) ----------------------------------------------------------------

FIELD_MANAGER: Final = "canopy-control-plane"


@dataclass(frozen=True)
class NamespaceLimits:
    """ResourceQuota and LimitRange defaults of a pooled workspace namespace."""

    requests_cpu: str = "2"
    requests_memory: str = "4Gi"
    limits_cpu: str = "4"
    limits_memory: str = "8Gi"
    pods: str = "20"
    services_load_balancers: str = "0"
    services_node_ports: str = "0"
    persistent_volume_claims: str = "0"
    default_request_cpu: str = "100m"
    default_request_memory: str = "256Mi"
    default_limit_cpu: str = "1"
    default_limit_memory: str = "1Gi"
    max_cpu: str = "2"
    max_memory: str = "4Gi"


NAMESPACE_LIMITS: Final = NamespaceLimits()


def pod_security_context() -> dict[str, Any]:
    """Pod-level ``securityContext`` every workspace pod runs with."""
    return {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}


def container_security_context() -> dict[str, Any]:
    """Container-level ``securityContext``: non-root, read-only root filesystem, no escalation, no capabilities."""
    return {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }


def namespace_manifest(namespace: str, tags: Mapping[str, str]) -> dict[str, Any]:
    """The workspace namespace, labelled with the tags and enforcing the ``restricted`` Pod Security Standard."""
    labels = {**kubernetes_labels(tags), "pod-security.kubernetes.io/enforce": "restricted"}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": labels}}


def resource_quota_manifest(namespace: str, limits: NamespaceLimits = NAMESPACE_LIMITS) -> dict[str, Any]:
    """The namespace's ResourceQuota (no load balancers, node ports or volumes: files live in S3)."""
    hard = {
        "requests.cpu": limits.requests_cpu,
        "requests.memory": limits.requests_memory,
        "limits.cpu": limits.limits_cpu,
        "limits.memory": limits.limits_memory,
        "pods": limits.pods,
        "services.loadbalancers": limits.services_load_balancers,
        "services.nodeports": limits.services_node_ports,
        "persistentvolumeclaims": limits.persistent_volume_claims,
    }
    return _namespaced("v1", "ResourceQuota", "workspace-quota", namespace, {"hard": hard})


def limit_range_manifest(namespace: str, limits: NamespaceLimits = NAMESPACE_LIMITS) -> dict[str, Any]:
    """The namespace's LimitRange: defaults for containers that state no resources, and a ceiling."""
    item = {
        "type": "Container",
        "defaultRequest": {"cpu": limits.default_request_cpu, "memory": limits.default_request_memory},
        "default": {"cpu": limits.default_limit_cpu, "memory": limits.default_limit_memory},
        "max": {"cpu": limits.max_cpu, "memory": limits.max_memory},
    }
    return _namespaced("v1", "LimitRange", "workspace-limits", namespace, {"limits": [item]})


def default_deny_network_policy(namespace: str) -> dict[str, Any]:
    """NetworkPolicy denying all ingress and egress of every pod; the compute provider adds narrow allows."""
    spec = {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    return _namespaced("networking.k8s.io/v1", "NetworkPolicy", "default-deny", namespace, spec)


def _namespaced(api_version: str, kind: str, name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": namespace}, "spec": spec}


# --- Cell outputs ----------------------------------------------------------------------------------


class CellOutputsError(ValueError):
    """Stack outputs that cannot describe a cell; ``problems`` lists every reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid cell outputs: " + "; ".join(problems))
        self.problems = problems


_ZONE_ID_RE = re.compile(r"^Z[A-Z0-9]{1,31}$")
_SUBNET_RE = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_ARN_RE = {
    "postgres_admin_secret_arn": re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+$"),
    "kms_key_arn": re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[0-9a-f-]+$"),
    "control_plane_role_arn": re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$"),
    "oidc_provider_arn": re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:oidc-provider/.+$"),
}


@dataclass(frozen=True)
class CellOutputs:
    """Everything ``canopy cells register`` needs to know about a cell; never a password (only a secret's ARN)."""

    name: str
    region: str
    cluster_name: str
    cluster_endpoint: str
    cluster_ca: str
    postgres_host: str
    postgres_port: int
    postgres_admin_secret_arn: str
    bucket_name: str
    kms_key_arn: str
    zone_id: str
    domain: str
    control_plane_role_arn: str
    oidc_provider_arn: str
    private_subnet_ids: tuple[str, ...]
    max_workspaces: int
    max_databases: int

    @classmethod
    def from_stack_outputs(cls, outputs: Mapping[str, Any]) -> CellOutputs:
        """Read ``pulumi stack output --json`` of a cell; :class:`CellOutputsError` lists every problem."""
        names = [f.name for f in fields(cls)]
        problems = [f"missing output {name!r}" for name in names if name not in outputs]
        problems += [f"unexpected output {key!r}" for key in outputs if key not in names]
        if problems:
            raise CellOutputsError(problems)
        values: dict[str, Any] = {}
        for name in names:
            try:
                values[name] = _parse_output(name, outputs[name])
            except ValueError as exc:
                problems.append(f"{name}: {exc}")
        if problems:
            raise CellOutputsError(problems)
        return cls(**values)

    def to_stack_outputs(self) -> dict[str, Any]:
        """The JSON-ready mapping :meth:`from_stack_outputs` reads back."""
        outputs = {f.name: getattr(self, f.name) for f in fields(self)}
        outputs["private_subnet_ids"] = list(self.private_subnet_ids)
        return outputs


def _parse_output(name: str, value: Any) -> Any:
    if name in ("postgres_port", "max_workspaces", "max_databases"):
        number = _integer(value)
        upper = 65535 if name == "postgres_port" else 1_000_000
        if not 1 <= number <= upper:
            raise ValueError(f"{number} is not between 1 and {upper}")
        return number
    if name == "private_subnet_ids":
        if not isinstance(value, list | tuple) or len(value) < 2:
            raise ValueError("expected a list of at least 2 subnet ids")
        bad = [s for s in value if not isinstance(s, str) or not _SUBNET_RE.match(s)]
        if bad:
            raise ValueError(f"not subnet ids: {bad!r}")
        return tuple(value)
    if not isinstance(value, str) or not value:
        raise ValueError("expected a non-empty string")
    _check_string(name, value)
    return value


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, str) and not value.isdigit():
        raise ValueError(f"expected an integer, got {value!r}")
    return int(value)


def _check_string(name: str, value: str) -> None:
    if name in _ARN_RE and not _ARN_RE[name].match(value):
        raise ValueError(f"{value!r} is not a {name.removesuffix('_arn').replace('_', ' ')} ARN")
    if name == "name":
        validate_cell_name(value)
    elif name == "region":
        validate_region(value)
    elif name == "cluster_endpoint" and not value.startswith("https://"):
        raise ValueError(f"{value!r} is not an https:// URL")
    elif name == "cluster_ca":
        try:
            pem = base64.b64decode(value, validate=True)
        except binascii.Error:
            raise ValueError("expected the base64 of a PEM certificate") from None
        if not pem.startswith(b"-----BEGIN CERTIFICATE-----"):
            raise ValueError("expected the base64 of a PEM certificate")
    elif name == "bucket_name" and (not _BUCKET_RE.match(value) or ".." in value):
        raise ValueError(f"{value!r} is not an S3 bucket name")
    elif name == "zone_id" and not _ZONE_ID_RE.match(value):
        raise ValueError(f"{value!r} is not a Route53 hosted zone id")
    elif name in ("domain", "postgres_host"):
        validate_domain(value)
