"""The Pulumi program of a cell: VPC, KMS key, shared EKS cluster and its IAM OIDC provider (the workspaces' pods
assume their roles through it), shared Aurora PostgreSQL, shared bucket, Route53 zone, and the IAM role the
control plane assumes to place workspaces in it.

Per-workspace resources are not here: the control plane creates them through boto3 with the names, tags and
settings of :mod:`infra.conventions`, which this program uses too.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import MISSING, dataclass, fields
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as kubernetes

from infra.conventions import (
    EKS,
    IAM_PATH,
    KMS,
    MANAGED_BY,
    POOLED_PREFIX_ROOT,
    RDS,
    S3,
    STS_AUDIENCE,
    TAG_CELL,
    TAG_MANAGED_BY,
    TAG_WORKSPACE,
    TIER_PROFESSIONAL,
    CellNames,
    cell_names,
    cell_tags,
    tls_only_policy,
    validate_cell_name,
    validate_domain,
    validate_region,
)
from infra.ingress import (
    CELL_INGRESS_CLASS,
    CELL_INGRESS_LABEL,
    CELL_INGRESS_NAMESPACE,
    LB,
    IngressNginx,
    ingress_nginx_manifests,
)

_PRINCIPAL_RE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(?:root|role/.+|user/.+)$")


@dataclass(frozen=True)
class CellConfig:
    """What one cell stack is configured with (``pulumi config set <key> ...``, see :func:`load_config`)."""

    name: str
    region: str
    domain: str
    control_plane_principal_arn: str
    control_plane_external_id: str = ""
    vpc_cidr: str = "10.40.0.0/16"
    az_count: int = 3
    node_instance_types: tuple[str, ...] = EKS.node_instance_types[TIER_PROFESSIONAL]
    node_min_size: int = 2
    node_desired_size: int = 3
    node_max_size: int = 10
    db_instance_class: str = RDS.instance_class(TIER_PROFESSIONAL)
    db_instance_count: int = 2
    api_allowed_cidrs: tuple[str, ...] = ()
    max_workspaces: int = 500
    max_databases: int = 500

    def __post_init__(self) -> None:
        validate_cell_name(self.name)
        validate_domain(self.domain)
        validate_region(self.region)
        problems = []
        if not _PRINCIPAL_RE.match(self.control_plane_principal_arn):
            problems.append("controlPlanePrincipalArn must be an IAM role, user or account root ARN")
        if not 2 <= self.az_count <= 6:
            problems.append("azCount must be between 2 and 6")
        if not 16 <= ipaddress.IPv4Network(self.vpc_cidr).prefixlen <= 20:
            problems.append("vpcCidr must be a /16 to /20 network")
        if not 1 <= self.node_min_size <= self.node_desired_size <= self.node_max_size:
            problems.append("node sizes must satisfy 1 <= min <= desired <= max")
        if self.db_instance_count < 1 or self.max_workspaces < 1 or self.max_databases < 1:
            problems.append("dbInstanceCount, maxWorkspaces and maxDatabases must be at least 1")
        if any(ipaddress.ip_network(cidr).prefixlen == 0 for cidr in self.api_allowed_cidrs):
            problems.append("apiAllowedCidrs must not open the cluster API to the whole internet")
        if problems:
            raise ValueError("invalid cell config: " + "; ".join(problems))


def load_config() -> CellConfig:
    """Read the stack's configuration: each :class:`CellConfig` field under its camelCase key
    (``controlPlanePrincipalArn``, ``azCount``, ``apiAllowedCidrs``...); fields without a default are required.
    """
    cfg = pulumi.Config()
    values: dict[str, Any] = {}
    for field in fields(CellConfig):
        key = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), field.name)
        if field.default is MISSING:
            values[field.name] = cfg.require(key)
        elif field.type == "int":
            values[field.name] = cfg.get_int(key)
        elif field.type == "str":
            values[field.name] = cfg.get(key)
        else:
            listed = cfg.get_object(key)
            values[field.name] = None if listed is None else tuple(listed)
    return CellConfig(**{name: value for name, value in values.items() if value is not None})


def subnet_cidrs(vpc_cidr: str, az_count: int) -> tuple[list[str], list[str]]:
    """Private subnets (an eighth of the VPC each: room for pod IPs) and small public ones from the last eighth."""
    network = ipaddress.IPv4Network(vpc_cidr)
    eighths = list(network.subnets(prefixlen_diff=3))
    public = list(eighths[-1].subnets(prefixlen_diff=3))
    return [str(n) for n in eighths[:az_count]], [str(n) for n in public[:az_count]]


def control_plane_trust_policy(principal_arn: str, external_id: str) -> dict[str, Any]:
    """Who may assume the control-plane role: the control plane's principal, with the external id if one is set."""
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": {"AWS": principal_arn}, "Action": "sts:AssumeRole"}
    if external_id:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return {"Version": "2012-10-17", "Statement": [statement]}


def control_plane_policy(
    *,
    partition: str,
    account_id: str,
    region: str,
    bucket_arn: str,
    kms_key_arn: str,
    admin_secret_arn: str,
    zone_id: str,
    domain: str,
) -> dict[str, Any]:
    """What the control plane may do in the cell's account: create resources only with canopy workspace tags,
    change, tag or delete only resources carrying them (never the cell's own), read the database admin secret,
    use only the cell's zone and the workspaces' prefixes of the shared bucket, and manage IAM only under the
    canopy path, plus the OIDC providers of silo clusters (tagged for a workspace, never the cell's).
    """
    iam = f"arn:{partition}:iam::{account_id}"
    eks_oidc_providers = f"{iam}:oidc-provider/oidc.eks.{region}.amazonaws.com*/id/*"  # .com.cn in China
    managed = {f"aws:RequestTag/{TAG_MANAGED_BY}": MANAGED_BY}
    creating = {"StringEquals": managed, "Null": {f"aws:RequestTag/{TAG_WORKSPACE}": "false"}}
    owned = {
        "StringEquals": {f"aws:ResourceTag/{TAG_MANAGED_BY}": MANAGED_BY},
        "Null": {f"aws:ResourceTag/{TAG_WORKSPACE}": "false"},
    }
    aws_policies = [
        f"arn:{partition}:iam::aws:policy/{name}"
        for name in (
            "AmazonEKSClusterPolicy",
            "AmazonEKSWorkerNodePolicy",
            "AmazonEKS_CNI_Policy",
            "AmazonEC2ContainerRegistryReadOnly",
        )
    ]
    statements: list[dict[str, Any]] = [
        {
            "Sid": "Read",
            "Effect": "Allow",
            "Action": [
                "rds:Describe*",
                "rds:ListTagsForResource",
                "eks:Describe*",
                "eks:List*",
                "ec2:Describe*",
                "kms:ListAliases",
                "secretsmanager:ListSecrets",
                "route53:GetChange",
                "tag:GetResources",
                "acm:ListCertificates",
                "acm:DescribeCertificate",
                "acm:ListTagsForCertificate",
                "iam:ListOpenIDConnectProviders",  # no resource-level scoping exists for this listing
            ],
            "Resource": "*",
        },
        {
            "Sid": "CreateWorkspaceResources",
            "Effect": "Allow",
            "Action": [
                "rds:CreateDBInstance",
                "rds:CreateDBSubnetGroup",
                "rds:AddTagsToResource",
                "eks:CreateCluster",
                "eks:CreateNodegroup",
                "eks:CreateAccessEntry",
                "eks:CreatePodIdentityAssociation",
                "eks:TagResource",
                "kms:CreateKey",
                "kms:TagResource",
                "secretsmanager:CreateSecret",
                "secretsmanager:TagResource",
                "ec2:CreateSecurityGroup",
                "ec2:CreateTags",
                "acm:RequestCertificate",
                "acm:AddTagsToCertificate",
            ],
            "Resource": "*",
            "Condition": creating,
        },
        {
            "Sid": "ManageWorkspaceResources",
            "Effect": "Allow",
            "Action": [
                "rds:ModifyDBInstance",
                "rds:DeleteDBInstance",
                "rds:DeleteDBSubnetGroup",
                "rds:CreateDBSnapshot",
                "eks:UpdateClusterConfig",
                "eks:UpdateClusterVersion",
                "eks:UpdateNodegroupConfig",
                "eks:UpdateNodegroupVersion",
                "eks:DeleteCluster",
                "eks:DeleteNodegroup",
                "eks:DeletePodIdentityAssociation",
                "eks:AssociateAccessPolicy",
                "kms:DescribeKey",
                "kms:EnableKeyRotation",
                "kms:GetKeyRotationStatus",
                "kms:CreateAlias",
                "kms:DeleteAlias",
                "kms:CreateGrant",
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:GenerateDataKey",
                "kms:ScheduleKeyDeletion",
                "secretsmanager:DescribeSecret",
                "secretsmanager:GetSecretValue",
                "secretsmanager:PutSecretValue",
                "secretsmanager:UpdateSecretVersionStage",
                "secretsmanager:DeleteSecret",
                "ec2:AuthorizeSecurityGroupIngress",
                "ec2:RevokeSecurityGroupIngress",
                "ec2:DeleteSecurityGroup",
                "acm:DeleteCertificate",
            ],
            "Resource": "*",
            "Condition": owned,
        },
        {
            "Sid": "WorkspaceKeyAliases",
            "Effect": "Allow",
            "Action": ["kms:CreateAlias", "kms:DeleteAlias"],
            "Resource": f"arn:{partition}:kms:{region}:{account_id}:alias/canopy/*",
        },
        {
            "Sid": "ProtectCellResources",
            "Effect": "Deny",
            "Action": [
                "rds:AddTagsToResource",
                "rds:RemoveTagsFromResource",
                "eks:TagResource",
                "eks:UntagResource",
                "kms:TagResource",
                "kms:UntagResource",
                "secretsmanager:TagResource",
                "secretsmanager:UntagResource",
                "ec2:CreateTags",
                "ec2:DeleteTags",
                "acm:AddTagsToCertificate",
                "acm:RemoveTagsFromCertificate",
            ],
            "Resource": "*",
            "Condition": {"Null": {f"aws:ResourceTag/{TAG_CELL}": "false", f"aws:ResourceTag/{TAG_WORKSPACE}": "true"}},
        },
        {
            "Sid": "SiloBuckets",
            "Effect": "Allow",
            "Action": [
                "s3:CreateBucket",
                "s3:DeleteBucket",
                "s3:ListBucket",
                "s3:ListBucketVersions",
                "s3:GetBucket*",
                "s3:PutBucketTagging",
                "s3:PutBucketVersioning",
                "s3:PutBucketPolicy",
                "s3:PutBucketPublicAccessBlock",
                "s3:PutBucketOwnershipControls",
                "s3:GetEncryptionConfiguration",
                "s3:PutEncryptionConfiguration",
                "s3:DeleteObject",
                "s3:DeleteObjectVersion",
            ],
            "Resource": [f"arn:{partition}:s3:::canopy-*", f"arn:{partition}:s3:::canopy-*/*"],
        },
        {
            "Sid": "ProtectCellBucket",
            "Effect": "Deny",
            "Action": [
                "s3:DeleteBucket",
                "s3:PutBucketTagging",
                "s3:PutBucketVersioning",
                "s3:PutBucketPolicy",
                "s3:PutBucketPublicAccessBlock",
                "s3:PutBucketOwnershipControls",
                "s3:PutEncryptionConfiguration",
            ],
            "Resource": bucket_arn,
        },
        {
            "Sid": "PooledPrefixes",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"],
            "Resource": f"{bucket_arn}/{POOLED_PREFIX_ROOT}*",
        },
        {
            "Sid": "CellDatabaseAdminSecret",
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
            "Resource": admin_secret_arn,
        },
        {
            "Sid": "CellKeyThroughS3AndSecretsManager",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": kms_key_arn,
            "Condition": {"StringLike": {"kms:ViaService": ["s3.*.amazonaws.com", "secretsmanager.*.amazonaws.com"]}},
        },
        {
            "Sid": "WorkspaceRecords",
            "Effect": "Allow",
            "Action": ["route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets"],
            "Resource": f"arn:{partition}:route53:::hostedzone/{zone_id}",
            "Condition": {
                "ForAllValues:StringLike": {"route53:ChangeResourceRecordSetsNormalizedRecordNames": [f"*.{domain}"]}
            },
        },
        {
            "Sid": "WorkspaceIam",
            "Effect": "Allow",
            "Action": [
                "iam:GetRole",
                "iam:CreateRole",
                "iam:DeleteRole",
                "iam:TagRole",
                "iam:UpdateAssumeRolePolicy",
                "iam:ListAttachedRolePolicies",
                "iam:DetachRolePolicy",
                "iam:GetPolicy",
                "iam:CreatePolicy",
                "iam:DeletePolicy",
                "iam:TagPolicy",
                "iam:ListPolicyVersions",
                "iam:GetPolicyVersion",
                "iam:CreatePolicyVersion",
                "iam:DeletePolicyVersion",
                "iam:ListEntitiesForPolicy",
                "iam:ListRoleTags",
                "iam:ListPolicyTags",
                "iam:ListRoles",  # the leak sweep lists /canopy/ only: a path-scoped resource limits the listing
                "iam:ListPolicies",
            ],
            "Resource": [f"{iam}:role{IAM_PATH}*", f"{iam}:policy{IAM_PATH}*"],
        },
        {
            "Sid": "ReadEksOidcProviders",
            "Effect": "Allow",
            "Action": ["iam:GetOpenIDConnectProvider", "iam:ListOpenIDConnectProviderTags"],
            "Resource": eks_oidc_providers,
        },
        {
            # A silo's cluster step creates its issuer's provider tagged for the workspace, or converges its tags;
            # never those of a provider of the cell.
            "Sid": "TagSiloOidcProviders",
            "Effect": "Allow",
            "Action": ["iam:CreateOpenIDConnectProvider", "iam:TagOpenIDConnectProvider"],
            "Resource": eks_oidc_providers,
            "Condition": {
                "StringEquals": managed,
                "Null": {f"aws:RequestTag/{TAG_WORKSPACE}": "false", f"aws:ResourceTag/{TAG_CELL}": "true"},
            },
        },
        {
            "Sid": "ManageSiloOidcProviders",
            "Effect": "Allow",
            "Action": ["iam:AddClientIDToOpenIDConnectProvider", "iam:DeleteOpenIDConnectProvider"],
            "Resource": eks_oidc_providers,
            "Condition": owned,
        },
        {
            "Sid": "AttachOnlyKnownPolicies",
            "Effect": "Allow",
            "Action": "iam:AttachRolePolicy",
            "Resource": f"{iam}:role{IAM_PATH}*",
            "Condition": {"ArnLike": {"iam:PolicyARN": [*aws_policies, f"{iam}:policy{IAM_PATH}*"]}},
        },
        {
            "Sid": "PassWorkspaceRoles",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": f"{iam}:role{IAM_PATH}*",
            "Condition": {"StringEquals": {"iam:PassedToService": ["eks.amazonaws.com", "pods.eks.amazonaws.com"]}},
        },
    ]
    return {"Version": "2012-10-17", "Statement": statements}


def _service_trust(service: str) -> str:
    statement = {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def _named(tags: dict[str, str], name: str, **extra: str) -> dict[str, str]:
    return {**tags, "Name": name, **extra}


@dataclass(frozen=True)
class _Network:
    vpc: aws.ec2.Vpc
    private_subnets: list[aws.ec2.Subnet]


def _network(config: CellConfig, names: CellNames, tags: dict[str, str], azs: Sequence[str], opts: Any) -> _Network:
    prefix = names.prefix
    vpc = aws.ec2.Vpc(
        prefix,
        cidr_block=config.vpc_cidr,
        enable_dns_support=True,
        enable_dns_hostnames=True,
        tags=_named(tags, prefix),
        opts=opts(),
    )
    igw = aws.ec2.InternetGateway(prefix, vpc_id=vpc.id, tags=_named(tags, prefix), opts=opts())
    public_routes = aws.ec2.RouteTable(
        f"{prefix}-public",
        vpc_id=vpc.id,
        routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
        tags=_named(tags, f"{prefix}-public"),
        opts=opts(),
    )
    private_cidrs, public_cidrs = subnet_cidrs(config.vpc_cidr, config.az_count)
    private_subnets = []
    for az, private_cidr, public_cidr in zip(azs, private_cidrs, public_cidrs, strict=True):
        public = aws.ec2.Subnet(
            f"{prefix}-public-{az}",
            vpc_id=vpc.id,
            cidr_block=public_cidr,
            availability_zone=az,
            map_public_ip_on_launch=False,
            tags=_named(tags, f"{prefix}-public-{az}", **{"kubernetes.io/role/elb": "1"}),
            opts=opts(),
        )
        aws.ec2.RouteTableAssociation(
            f"{prefix}-public-{az}", subnet_id=public.id, route_table_id=public_routes.id, opts=opts()
        )
        eip = aws.ec2.Eip(f"{prefix}-nat-{az}", domain="vpc", tags=_named(tags, f"{prefix}-nat-{az}"), opts=opts())
        nat = aws.ec2.NatGateway(
            f"{prefix}-{az}",
            allocation_id=eip.id,
            subnet_id=public.id,
            tags=_named(tags, f"{prefix}-{az}"),
            opts=opts(depends_on=[igw]),
        )
        private = aws.ec2.Subnet(
            f"{prefix}-private-{az}",
            vpc_id=vpc.id,
            cidr_block=private_cidr,
            availability_zone=az,
            map_public_ip_on_launch=False,
            tags=_named(
                tags,
                f"{prefix}-private-{az}",
                **{"kubernetes.io/role/internal-elb": "1", f"kubernetes.io/cluster/{names.cluster}": "shared"},
            ),
            opts=opts(),
        )
        routes = aws.ec2.RouteTable(
            f"{prefix}-private-{az}",
            vpc_id=vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat.id)],
            tags=_named(tags, f"{prefix}-private-{az}"),
            opts=opts(),
        )
        aws.ec2.RouteTableAssociation(
            f"{prefix}-private-{az}", subnet_id=private.id, route_table_id=routes.id, opts=opts()
        )
        private_subnets.append(private)
    return _Network(vpc=vpc, private_subnets=private_subnets)


def _role(
    name: str, service: str, policies: list[str], tags: dict[str, str], opts: Any
) -> tuple[aws.iam.Role, list[Any]]:
    role = aws.iam.Role(name, name=name, assume_role_policy=_service_trust(service), tags=tags, opts=opts())
    attachments = [
        aws.iam.RolePolicyAttachment(f"{name}-{arn.rsplit('/', 1)[-1]}", role=role.name, policy_arn=arn, opts=opts())
        for arn in policies
    ]
    return role, attachments


def _wildcard_certificate(
    config: CellConfig, names: CellNames, tags: dict[str, str], zone: aws.route53.Zone, opts: Any
) -> pulumi.Output[str]:
    """``*.<domain>`` from ACM, DNS-validated in the cell's zone: the ARN once ISSUED (the NLB ends TLS with it)."""
    certificate = aws.acm.Certificate(
        f"{names.prefix}-ingress",
        domain_name=f"*.{config.domain}",
        validation_method="DNS",
        key_algorithm="RSA_2048",
        tags=tags,
        opts=opts(),
    )
    option = certificate.domain_validation_options.apply(lambda options: options[0])
    record = aws.route53.Record(
        f"{names.prefix}-ingress-validation",
        zone_id=zone.zone_id,
        name=option.apply(lambda o: o.resource_record_name),
        type=option.apply(lambda o: o.resource_record_type),
        records=[option.apply(lambda o: o.resource_record_value)],
        ttl=60,
        allow_overwrite=True,
        opts=opts(),
    )
    validation = aws.acm.CertificateValidation(
        f"{names.prefix}-ingress",
        certificate_arn=certificate.arn,
        validation_record_fqdns=[record.fqdn],
        opts=opts(),
    )
    return validation.certificate_arn


def _kubeconfig(cluster: str, endpoint: str, ca_data: str, region: str) -> dict[str, Any]:
    """A kubeconfig reaching ``cluster`` with a token from ``aws eks get-token`` (the Pulumi runner's identity)."""
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "aws",
            "args": ["eks", "get-token", "--cluster-name", cluster, "--region", region],
        }
    }
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": endpoint, "certificate-authority-data": ca_data}}],
        "users": [{"name": cluster, "user": user}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": cluster}}],
        "current-context": cluster,
    }


_KUBERNETES_TYPES: dict[str, Any] = {
    "Namespace": kubernetes.core.v1.Namespace,
    "ServiceAccount": kubernetes.core.v1.ServiceAccount,
    "ConfigMap": kubernetes.core.v1.ConfigMap,
    "Service": kubernetes.core.v1.Service,
    "ClusterRole": kubernetes.rbac.v1.ClusterRole,
    "ClusterRoleBinding": kubernetes.rbac.v1.ClusterRoleBinding,
    "Role": kubernetes.rbac.v1.Role,
    "RoleBinding": kubernetes.rbac.v1.RoleBinding,
    "IngressClass": kubernetes.networking.v1.IngressClass,
    "Deployment": kubernetes.apps.v1.Deployment,
}


def _ingress_controller(
    names: CellNames,
    tags: dict[str, str],
    certificate_arn: pulumi.Output[str],
    opts: Callable[[], pulumi.ResourceOptions],
) -> Any:
    """The cell's ingress-nginx (:mod:`infra.ingress`, class ``nginx`` for every pooled namespace) on the shared
    cluster, its NLB ending TLS with ``certificate_arn``; returns its Service (the NLB's name is in its status)."""
    controller = IngressNginx(
        namespace=CELL_INGRESS_NAMESPACE,
        ingress_class=CELL_INGRESS_CLASS,
        controller_class="k8s.io/ingress-nginx",
        cluster_role="ingress-nginx",
        certificate_arn="",
        labels={"app.kubernetes.io/managed-by": MANAGED_BY},
        load_balancer_tags=tags,
        replicas=3,
    )
    declared: dict[str, Any] = {}
    for manifest in ingress_nginx_manifests(controller):
        kind, metadata = manifest["kind"], dict(manifest["metadata"])
        if kind == "Service":
            metadata["annotations"] = {**metadata["annotations"], LB + "ssl-cert": certificate_arn}
        body = {
            ("role_ref" if k == "roleRef" else k): v for k, v in manifest.items() if k not in ("apiVersion", "kind")
        }
        declared[kind] = _KUBERNETES_TYPES[kind](
            f"{names.prefix}-ingress-{kind.lower()}", **{**body, "metadata": metadata}, opts=opts()
        )
    return declared["Service"]


def define_cell(config: CellConfig) -> dict[str, pulumi.Output[Any]]:
    """Declare every resource of the cell; return the stack outputs, keyed like :class:`CellOutputs`."""
    names = cell_names(config.name)
    tags = cell_tags(config.name)
    provider = aws.Provider("aws", region=config.region)
    cell = pulumi.ComponentResource("canopy:cell:Cell", config.name, None, pulumi.ResourceOptions(providers=[provider]))

    def opts(**kwargs: Any) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=cell, **kwargs)

    invoke = pulumi.InvokeOptions(parent=cell)
    partition = aws.get_partition(opts=invoke).partition
    account_id = aws.get_caller_identity(opts=invoke).account_id
    azs = aws.get_availability_zones(state="available", opts=invoke).names
    if len(azs) < config.az_count:
        raise ValueError(f"{config.region} has {len(azs)} available zones; azCount is {config.az_count}")
    network = _network(config, names, tags, azs[: config.az_count], opts)
    private_ids = [subnet.id for subnet in network.private_subnets]

    key = aws.kms.Key(
        names.prefix,
        description=f"Canopy cell {config.name}: database, bucket and Kubernetes secrets",
        enable_key_rotation=KMS.enable_key_rotation,
        deletion_window_in_days=KMS.deletion_window_days,
        customer_master_key_spec=KMS.key_spec,
        key_usage=KMS.key_usage,
        tags=tags,
        opts=opts(),
    )
    aws.kms.Alias(names.prefix, name=names.kms_alias, target_key_id=key.key_id, opts=opts())

    policy = f"arn:{partition}:iam::aws:policy"
    cluster_role, cluster_attachments = _role(
        names.cluster_role, "eks.amazonaws.com", [f"{policy}/AmazonEKSClusterPolicy"], tags, opts
    )
    aws.iam.RolePolicy(
        f"{names.cluster_role}-kms",
        role=cluster_role.id,
        policy=key.arn.apply(
            lambda arn: json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey", "kms:CreateGrant"],
                            "Resource": arn,
                        }
                    ],
                }
            )
        ),
        opts=opts(),
    )
    node_role, node_attachments = _role(
        names.node_role,
        "ec2.amazonaws.com",
        [
            f"{policy}/AmazonEKSWorkerNodePolicy",
            f"{policy}/AmazonEKS_CNI_Policy",
            f"{policy}/AmazonEC2ContainerRegistryReadOnly",
        ],
        tags,
        opts,
    )
    cluster = aws.eks.Cluster(
        names.cluster,
        name=names.cluster,
        role_arn=cluster_role.arn,
        version=EKS.kubernetes_version,
        vpc_config=aws.eks.ClusterVpcConfigArgs(
            subnet_ids=private_ids,
            endpoint_private_access=EKS.endpoint_private_access,
            endpoint_public_access=bool(config.api_allowed_cidrs) or EKS.endpoint_public_access,
            public_access_cidrs=list(config.api_allowed_cidrs) or None,
        ),
        encryption_config=aws.eks.ClusterEncryptionConfigArgs(
            resources=list(EKS.encrypted_resources),
            provider=aws.eks.ClusterEncryptionConfigProviderArgs(key_arn=key.arn),
        ),
        enabled_cluster_log_types=list(EKS.cluster_log_types),
        access_config=aws.eks.ClusterAccessConfigArgs(authentication_mode=EKS.authentication_mode),
        tags=tags,
        opts=opts(depends_on=cluster_attachments),
    )
    oidc_provider = aws.iam.OpenIdConnectProvider(
        names.cluster,
        url=cluster.identities.apply(lambda identities: identities[0].oidcs[0].issuer),
        client_id_lists=[STS_AUDIENCE],
        tags=tags,
        opts=opts(),
    )
    nodegroup = aws.eks.NodeGroup(
        names.nodegroup,
        cluster_name=cluster.name,
        node_group_name=names.nodegroup,
        node_role_arn=node_role.arn,
        subnet_ids=private_ids,
        instance_types=list(config.node_instance_types),
        ami_type=EKS.ami_type,
        disk_size=EKS.node_disk_gb,
        scaling_config=aws.eks.NodeGroupScalingConfigArgs(
            min_size=config.node_min_size, desired_size=config.node_desired_size, max_size=config.node_max_size
        ),
        update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
        tags=tags,
        opts=opts(depends_on=node_attachments),
    )

    db_security_group = aws.ec2.SecurityGroup(
        names.db_security_group,
        name=names.db_security_group,
        description="PostgreSQL from the cell's Kubernetes cluster only",
        vpc_id=network.vpc.id,
        ingress=[
            aws.ec2.SecurityGroupIngressArgs(
                protocol="tcp",
                from_port=RDS.port,
                to_port=RDS.port,
                security_groups=[cluster.vpc_config.apply(lambda vpc: vpc.cluster_security_group_id or "")],
            )
        ],
        tags=_named(tags, names.db_security_group),
        opts=opts(),
    )
    subnet_group = aws.rds.SubnetGroup(
        names.db_subnet_group, name=names.db_subnet_group, subnet_ids=private_ids, tags=tags, opts=opts()
    )
    database = aws.rds.Cluster(
        names.database,
        cluster_identifier=names.database,
        engine=RDS.aurora_engine,
        engine_version=RDS.aurora_engine_version,
        port=RDS.port,
        master_username=RDS.master_username,
        manage_master_user_password=RDS.manage_master_user_password,
        master_user_secret_kms_key_id=key.arn,
        storage_encrypted=RDS.storage_encrypted,
        kms_key_id=key.arn,
        deletion_protection=RDS.deletion_protection,
        backup_retention_period=RDS.backup_retention_days,
        copy_tags_to_snapshot=RDS.copy_tags_to_snapshot,
        final_snapshot_identifier=f"{names.database}-final",
        db_subnet_group_name=subnet_group.name,
        vpc_security_group_ids=[db_security_group.id],
        enabled_cloudwatch_logs_exports=["postgresql"],
        tags=tags,
        opts=opts(),
    )
    for index in range(1, config.db_instance_count + 1):
        aws.rds.ClusterInstance(
            f"{names.database}-{index}",
            identifier=f"{names.database}-{index}",
            cluster_identifier=database.id,
            engine=aws.rds.EngineType(RDS.aurora_engine),
            engine_version=database.engine_version,
            instance_class=config.db_instance_class,
            db_subnet_group_name=subnet_group.name,
            publicly_accessible=RDS.publicly_accessible,
            auto_minor_version_upgrade=RDS.auto_minor_version_upgrade,
            tags=tags,
            opts=opts(),
        )

    admin_secret_arn = database.master_user_secrets.apply(lambda secrets: secrets[0].secret_arn)

    sse_by_default = aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs
    bucket = aws.s3.Bucket(f"{names.prefix}-files", bucket=names.bucket(account_id), tags=tags, opts=opts())
    aws.s3.BucketOwnershipControls(
        f"{names.prefix}-files",
        bucket=bucket.id,
        rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership=S3.object_ownership),
        opts=opts(),
    )
    aws.s3.BucketServerSideEncryptionConfiguration(
        f"{names.prefix}-files",
        bucket=bucket.id,
        rules=[
            aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=sse_by_default(
                    sse_algorithm=S3.sse_algorithm, kms_master_key_id=key.arn
                ),
                bucket_key_enabled=S3.bucket_key_enabled,
            )
        ],
        opts=opts(),
    )
    aws.s3.BucketVersioning(
        f"{names.prefix}-files",
        bucket=bucket.id,
        versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status=S3.versioning_status),
        opts=opts(),
    )
    public_access_block = aws.s3.BucketPublicAccessBlock(
        f"{names.prefix}-files",
        bucket=bucket.id,
        block_public_acls=S3.block_public_acls,
        ignore_public_acls=S3.ignore_public_acls,
        block_public_policy=S3.block_public_policy,
        restrict_public_buckets=S3.restrict_public_buckets,
        opts=opts(),
    )
    aws.s3.BucketPolicy(
        f"{names.prefix}-files",
        bucket=bucket.id,
        policy=bucket.arn.apply(lambda arn: json.dumps(tls_only_policy(arn))),
        opts=opts(depends_on=[public_access_block]),
    )

    zone = aws.route53.Zone(
        names.prefix, name=config.domain, comment=f"Canopy cell {config.name} workspaces", tags=tags, opts=opts()
    )
    certificate_arn = _wildcard_certificate(config, names, tags, zone, opts)
    kube = kubernetes.Provider(
        f"{names.prefix}-kubernetes",
        kubeconfig=pulumi.Output.all(cluster.name, cluster.endpoint, cluster.certificate_authority).apply(
            lambda parts: json.dumps(_kubeconfig(parts[0], parts[1], parts[2]["data"], config.region))
        ),
        opts=opts(depends_on=[nodegroup]),
    )
    ingress_service = _ingress_controller(names, tags, certificate_arn, lambda: opts(provider=kube))
    aws.route53.Record(
        f"{names.prefix}-ingress",
        zone_id=zone.zone_id,
        name=f"{CELL_INGRESS_LABEL}.{config.domain}",
        type="CNAME",
        ttl=60,
        records=[ingress_service.status.apply(lambda status: status.load_balancer.ingress[0].hostname)],
        opts=opts(),
    )

    control_plane_role = aws.iam.Role(
        names.control_plane_role,
        name=names.control_plane_role,
        assume_role_policy=json.dumps(
            control_plane_trust_policy(config.control_plane_principal_arn, config.control_plane_external_id)
        ),
        max_session_duration=3600,
        tags=tags,
        opts=opts(),
    )
    aws.iam.RolePolicy(
        names.control_plane_role,
        role=control_plane_role.id,
        policy=pulumi.Output.all(
            bucket_arn=bucket.arn, kms_key_arn=key.arn, admin_secret_arn=admin_secret_arn, zone_id=zone.zone_id
        ).apply(
            lambda arns: json.dumps(
                control_plane_policy(
                    partition=partition, account_id=account_id, region=config.region, domain=config.domain, **arns
                )
            )
        ),
        opts=opts(),
    )
    access = aws.eks.AccessEntry(
        names.control_plane_role,
        cluster_name=cluster.name,
        principal_arn=control_plane_role.arn,
        type="STANDARD",
        tags=tags,
        opts=opts(),
    )
    aws.eks.AccessPolicyAssociation(
        names.control_plane_role,
        cluster_name=cluster.name,
        principal_arn=access.principal_arn,
        policy_arn=f"arn:{partition}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy",
        access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
        opts=opts(),
    )

    outputs: dict[str, pulumi.Output[Any]] = {
        "name": pulumi.Output.from_input(config.name),
        "region": pulumi.Output.from_input(config.region),
        "cluster_name": cluster.name,
        "cluster_endpoint": cluster.endpoint,
        "cluster_ca": cluster.certificate_authority.apply(lambda ca: ca.data),
        "postgres_host": database.endpoint,
        "postgres_port": database.port,
        "postgres_admin_secret_arn": admin_secret_arn,
        "bucket_name": bucket.bucket,
        "kms_key_arn": key.arn,
        "zone_id": zone.zone_id,
        "domain": pulumi.Output.from_input(config.domain),
        "control_plane_role_arn": control_plane_role.arn,
        "oidc_provider_arn": oidc_provider.arn,
        "private_subnet_ids": pulumi.Output.all(*private_ids),
        "max_workspaces": pulumi.Output.from_input(config.max_workspaces),
        "max_databases": pulumi.Output.from_input(config.max_databases),
    }
    cell.register_outputs(outputs)
    return outputs
