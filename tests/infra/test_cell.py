"""The cell program under Pulumi's mocks: its outputs are a valid CellOutputs and it breaks no policy."""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib
import inspect
import ipaddress
import json
import re
from typing import Any

import pulumi
import pytest

from infra.cell.program import CellConfig, control_plane_policy, load_config, subnet_cidrs
from infra.conventions import CellOutputs, cell_names, cell_tags, tls_only_policy
from infra.policy import TAGGABLE_TYPES, check_resources
from tests.infra.mocks import ACCOUNT, AZS, CONFIG, DeclaredCell, oidc_issuer_url

NAMES = cell_names(CONFIG.name)


def _one(cell: DeclaredCell, typ: str) -> dict[str, Any]:
    (record,) = cell.of_type(typ)
    return dict(record.inputs)


def test_outputs_are_exactly_a_cell_outputs(declared_cell: DeclaredCell) -> None:
    assert set(declared_cell.outputs) == {f.name for f in dataclasses.fields(CellOutputs)}
    outputs = CellOutputs.from_stack_outputs(declared_cell.outputs)
    key = next(r for r in declared_cell.of_type("aws:kms/key:Key"))
    subnets = {r.name: r.id for r in declared_cell.of_type("aws:ec2/subnet:Subnet")}
    assert outputs.name == CONFIG.name and outputs.region == CONFIG.region and outputs.domain == CONFIG.domain
    assert outputs.cluster_name == NAMES.cluster
    assert outputs.bucket_name == NAMES.bucket(ACCOUNT)
    assert outputs.kms_key_arn.endswith(f":key/{key.id}")
    assert outputs.private_subnet_ids == tuple(subnets[f"{NAMES.prefix}-private-{az}"] for az in AZS)
    assert outputs.postgres_port == 5432 and outputs.postgres_admin_secret_arn.startswith("arn:aws:secretsmanager:")
    assert outputs.control_plane_role_arn == f"arn:aws:iam::{ACCOUNT}:role/{NAMES.control_plane_role}"
    assert (outputs.max_workspaces, outputs.max_databases) == (CONFIG.max_workspaces, CONFIG.max_databases)
    assert not any("password" in key.lower() for key in declared_cell.outputs)


def test_the_shared_cluster_has_a_tagged_oidc_provider_for_its_pods(declared_cell: DeclaredCell) -> None:
    provider = _one(declared_cell, "aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    issuer = oidc_issuer_url(NAMES.cluster)
    assert provider["url"] == issuer and provider["clientIdLists"] == ["sts.amazonaws.com"]
    assert provider["tags"] == cell_tags(CONFIG.name)
    arn = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{issuer.removeprefix('https://')}"
    assert CellOutputs.from_stack_outputs(declared_cell.outputs).oidc_provider_arn == arn


def test_the_cell_breaks_no_policy(declared_cell: DeclaredCell) -> None:
    assert check_resources(declared_cell.records) == []


def _takes_tags(typ: str) -> bool:
    """Whether the pulumi-aws resource class of type token ``typ`` has a ``tags`` input."""
    _, path, cls = typ.split(":")
    module, file = path.split("/")
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", file).lower()
    resource = getattr(importlib.import_module(f"pulumi_aws.{module}.{snake}"), cls)
    return "tags" in inspect.signature(resource._internal_init).parameters


def test_taggable_types_agree_with_pulumi_aws(declared_cell: DeclaredCell) -> None:
    types = {r.type for r in declared_cell.records if r.type.startswith("aws:")}
    assert {t for t in types if _takes_tags(t)} == types & TAGGABLE_TYPES
    tagged = [r for r in declared_cell.records if r.type in TAGGABLE_TYPES]
    assert len(tagged) > 30
    for record in tagged:
        assert cell_tags(CONFIG.name).items() <= record.inputs["tags"].items(), record.name


def test_network_keeps_private_subnets_private(declared_cell: DeclaredCell) -> None:
    subnets = declared_cell.of_type("aws:ec2/subnet:Subnet")
    private = [s for s in subnets if "-private-" in s.name]
    assert len({s.inputs["availabilityZone"] for s in private}) == CONFIG.az_count >= 2
    assert all(s.inputs.get("mapPublicIpOnLaunch") is False for s in subnets)
    private_ids = sorted(s.id for s in private)
    assert sorted(_one(declared_cell, "aws:eks/nodeGroup:NodeGroup")["subnetIds"]) == private_ids
    assert sorted(_one(declared_cell, "aws:rds/subnetGroup:SubnetGroup")["subnetIds"]) == private_ids
    assert sorted(_one(declared_cell, "aws:eks/cluster:Cluster")["vpcConfig"]["subnetIds"]) == private_ids
    public_ids = {s.id for s in subnets if "-public-" in s.name}
    assert {n.inputs["subnetId"] for n in declared_cell.of_type("aws:ec2/natGateway:NatGateway")} == public_ids
    cidrs = [ipaddress.ip_network(s.inputs["cidrBlock"]) for s in subnets]
    assert all(n.subnet_of(ipaddress.IPv4Network(CONFIG.vpc_cidr)) for n in cidrs)  # type: ignore[arg-type]
    assert not any(a.overlaps(b) for i, a in enumerate(cidrs) for b in cidrs[i + 1 :])


def test_cluster_and_database_use_the_cell_key(declared_cell: DeclaredCell) -> None:
    key_arn = declared_cell.outputs["kms_key_arn"]
    cluster = _one(declared_cell, "aws:eks/cluster:Cluster")
    assert cluster["encryptionConfig"] == {"resources": ["secrets"], "provider": {"keyArn": key_arn}}
    assert cluster["vpcConfig"]["endpointPrivateAccess"] is True
    assert cluster["vpcConfig"]["endpointPublicAccess"] is False
    database = _one(declared_cell, "aws:rds/cluster:Cluster")
    assert database["engine"] == "aurora-postgresql"
    assert database["kmsKeyId"] == database["masterUserSecretKmsKeyId"] == key_arn
    assert database["manageMasterUserPassword"] is True and "masterPassword" not in database
    instances = declared_cell.of_type("aws:rds/clusterInstance:ClusterInstance")
    assert len(instances) == CONFIG.db_instance_count
    assert all(i.inputs["publiclyAccessible"] is False for i in instances)
    security_group = _one(declared_cell, "aws:ec2/securityGroup:SecurityGroup")
    (rule,) = security_group["ingress"]
    assert rule["fromPort"] == rule["toPort"] == 5432 and "cidrBlocks" not in rule and rule["securityGroups"]
    sse = _one(declared_cell, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    assert sse["rules"][0]["applyServerSideEncryptionByDefault"]["kmsMasterKeyId"] == key_arn
    rotation = _one(declared_cell, "aws:kms/key:Key")["enableKeyRotation"]
    assert rotation is True


def test_bucket_policy_is_tls_only(declared_cell: DeclaredCell) -> None:
    policy = _one(declared_cell, "aws:s3/bucketPolicy:BucketPolicy")
    bucket = declared_cell.outputs["bucket_name"]
    assert policy["bucket"] == bucket
    assert json.loads(policy["policy"]) == tls_only_policy(f"arn:aws:s3:::{bucket}")


def test_control_plane_role_trusts_only_the_control_plane(declared_cell: DeclaredCell) -> None:
    role = next(r for r in declared_cell.of_type("aws:iam/role:Role") if r.name == NAMES.control_plane_role)
    (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert statement["Principal"] == {"AWS": CONFIG.control_plane_principal_arn}
    assert statement["Condition"] == {"StringEquals": {"sts:ExternalId": CONFIG.control_plane_external_id}}
    association = _one(declared_cell, "aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
    assert association["principalArn"] == declared_cell.outputs["control_plane_role_arn"]


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def test_control_plane_permissions_are_scoped(declared_cell: DeclaredCell) -> None:
    (inline,) = [
        r for r in declared_cell.of_type("aws:iam/rolePolicy:RolePolicy") if r.name == NAMES.control_plane_role
    ]
    document = inline.inputs["policy"]
    assert len(re.sub(r"\s", "", document)) < 10_240  # the inline role policy limit
    policy = json.loads(document)
    bucket_arn = f"arn:aws:s3:::{declared_cell.outputs['bucket_name']}"
    for statement in policy["Statement"]:
        actions = _listed(statement["Action"])
        assert "*" not in actions and not any(a.endswith(":*") for a in actions)
        if statement["Resource"] == "*" and statement["Sid"] != "Read":
            assert statement["Condition"], f"{statement['Sid']} is unconditioned on every resource"
        if any(a.startswith("iam:") for a in actions) and statement["Sid"] != "Read":
            assert all(
                ":role/canopy/" in r or ":policy/canopy/" in r or ":oidc-provider/oidc.eks." in r
                for r in _listed(statement["Resource"])
            )
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert by_sid["Read"]["Action"] and all(
        a.split(":")[1].startswith(("Describe", "List", "Get")) for a in by_sid["Read"]["Action"]
    )
    assert by_sid["CreateWorkspaceResources"]["Condition"]["StringEquals"] == {
        "aws:RequestTag/canopy:managed-by": "canopy"
    }
    assert by_sid["ManageWorkspaceResources"]["Condition"]["Null"] == {"aws:ResourceTag/canopy:workspace": "false"}
    assert by_sid["ProtectCellBucket"]["Effect"] == "Deny" and by_sid["ProtectCellBucket"]["Resource"] == bucket_arn
    assert by_sid["PooledPrefixes"]["Resource"] == f"{bucket_arn}/workspaces/*"
    assert by_sid["WorkspaceRecords"]["Resource"].endswith(f"hostedzone/{declared_cell.outputs['zone_id']}")
    assert by_sid["CellDatabaseAdminSecret"]["Resource"] == declared_cell.outputs["postgres_admin_secret_arn"]
    assert "iam:UpdateAssumeRolePolicy" in by_sid["WorkspaceIam"]["Action"]  # the identity step converges trusts
    # Cell resources carry canopy:cell but no canopy:workspace: the control plane can neither manage nor re-tag them.
    assert "canopy:workspace" not in cell_tags(CONFIG.name)
    protect = by_sid["ProtectCellResources"]
    assert protect["Effect"] == "Deny"
    assert protect["Condition"] == {
        "Null": {"aws:ResourceTag/canopy:cell": "false", "aws:ResourceTag/canopy:workspace": "true"}
    }
    taggers = {a for s in policy["Statement"] if s["Effect"] == "Allow" for a in _listed(s["Action"]) if "Tag" in a}
    assert {a for a in taggers if not a.startswith(("iam:", "s3:", "rds:List", "acm:List"))} <= set(protect["Action"])


def test_the_control_plane_manages_silo_oidc_providers_but_not_the_cells(declared_cell: DeclaredCell) -> None:
    (inline,) = [
        r for r in declared_cell.of_type("aws:iam/rolePolicy:RolePolicy") if r.name == NAMES.control_plane_role
    ]
    statements = json.loads(inline.inputs["policy"])["Statement"]
    by_sid = {s["Sid"]: s for s in statements}
    # What the silo cluster step, its teardown and the leak sweep call (control_plane/providers/aws/eks.py, sweep.py).
    called = {
        "iam:ListOpenIDConnectProviders",
        "iam:GetOpenIDConnectProvider",
        "iam:ListOpenIDConnectProviderTags",
        "iam:CreateOpenIDConnectProvider",
        "iam:TagOpenIDConnectProvider",
        "iam:AddClientIDToOpenIDConnectProvider",
        "iam:DeleteOpenIDConnectProvider",
    }
    assert called <= {a for s in statements if s["Effect"] == "Allow" for a in _listed(s["Action"])}
    silo_provider = f"arn:aws:iam::{ACCOUNT}:oidc-provider/oidc.eks.{CONFIG.region}.amazonaws.com/id/0A1B2C3D4E"
    cell_provider = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{oidc_issuer_url(NAMES.cluster).removeprefix('https://')}"
    for sid in ("ReadEksOidcProviders", "TagSiloOidcProviders", "ManageSiloOidcProviders"):
        assert fnmatch.fnmatchcase(silo_provider, by_sid[sid]["Resource"])
    assert fnmatch.fnmatchcase(cell_provider, by_sid["ReadEksOidcProviders"]["Resource"])
    # Changes need the workspace's tags: the cell's provider carries the cell's, so it is never changed or re-tagged.
    tagging = by_sid["TagSiloOidcProviders"]["Condition"]
    assert tagging["StringEquals"] == {"aws:RequestTag/canopy:managed-by": "canopy"}
    assert tagging["Null"] == {"aws:RequestTag/canopy:workspace": "false", "aws:ResourceTag/canopy:cell": "true"}
    assert by_sid["ManageSiloOidcProviders"]["Condition"]["Null"] == {"aws:ResourceTag/canopy:workspace": "false"}
    cell_provider_tags = _one(declared_cell, "aws:iam/openIdConnectProvider:OpenIdConnectProvider")["tags"]
    assert "canopy:cell" in cell_provider_tags and "canopy:workspace" not in cell_provider_tags


def test_control_plane_policy_follows_the_partition() -> None:
    policy = control_plane_policy(
        partition="aws-cn",
        account_id="123456789012",
        region="cn-north-1",
        bucket_arn="arn:aws-cn:s3:::b",
        kms_key_arn="arn:aws-cn:kms:cn-north-1:123456789012:key/k",
        admin_secret_arn="arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:s",
        zone_id="Z1",
        domain="example.cn",
    )
    text = json.dumps(policy)
    assert "arn:aws:" not in text and "arn:aws-cn:iam::123456789012:role/canopy/*" in text


def test_subnet_cidrs_fit_the_vpc() -> None:
    for cidr in ("10.0.0.0/16", "10.40.0.0/18", "172.16.0.0/20"):
        for count in range(2, 7):
            private, public = subnet_cidrs(cidr, count)
            networks = [ipaddress.IPv4Network(n) for n in private + public]
            assert len(private) == len(public) == count
            assert all(n.subnet_of(ipaddress.IPv4Network(cidr)) for n in networks)
            assert not any(a.overlaps(b) for i, a in enumerate(networks) for b in networks[i + 1 :])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"az_count": 1}, "azCount"),
        ({"vpc_cidr": "10.0.0.0/8"}, "vpcCidr"),
        ({"region": "Europe"}, "region"),
        ({"control_plane_principal_arn": "arn:aws:s3:::bucket"}, "controlPlanePrincipalArn"),
        ({"node_min_size": 5, "node_desired_size": 3}, "node sizes"),
        ({"max_workspaces": 0}, "maxWorkspaces"),
        ({"api_allowed_cidrs": ("0.0.0.0/0",)}, "apiAllowedCidrs"),
        ({"name": "Cell_1"}, "cell name"),
        ({"domain": "nodots"}, "domain"),
    ],
)
def test_bad_config_is_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(CONFIG, **change)


def test_load_config_reads_camel_case_keys(declared_cell: DeclaredCell) -> None:
    project = pulumi.get_project()
    pulumi.runtime.set_all_config(
        {
            f"{project}:name": "use1-b",
            f"{project}:region": "us-east-1",
            f"{project}:domain": "use1-b.example.com",
            f"{project}:controlPlanePrincipalArn": "arn:aws:iam::210987654321:role/cp",
            f"{project}:azCount": "2",
            f"{project}:apiAllowedCidrs": '["203.0.113.0/24"]',
        }
    )
    try:
        config = load_config()
    finally:
        pulumi.runtime.set_all_config({})
    assert config == CellConfig(
        name="use1-b",
        region="us-east-1",
        domain="use1-b.example.com",
        control_plane_principal_arn="arn:aws:iam::210987654321:role/cp",
        az_count=2,
        api_allowed_cidrs=("203.0.113.0/24",),
    )
