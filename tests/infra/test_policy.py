"""Each policy check flags a deliberately bad record: the cell passes because it is right, not because checks are
blind."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from infra.conventions import workspace_tags
from infra.policy import ResourceRecord, Violation, check_resources
from tests.infra.mocks import DeclaredCell

Edit = Callable[[dict[str, Any]], dict[str, Any] | None]


def _edited(records: list[ResourceRecord], typ: str, edit: Edit, name: str = "") -> list[ResourceRecord]:
    """``records`` with the first record of ``typ`` (whose name contains ``name``) edited, or dropped if ``edit``
    returns None."""
    index = next(i for i, r in enumerate(records) if r.type == typ and name in r.name)
    inputs = edit(dict(records[index].inputs))
    changed = [] if inputs is None else [replace(records[index], inputs=inputs)]
    return [*records[:index], *changed, *records[index + 1 :]]


def _rules(violations: list[Violation]) -> set[str]:
    return {v.rule for v in violations}


SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"


@pytest.mark.parametrize(
    ("typ", "name", "edit", "rule"),
    [
        (SSE, "", lambda i: None, "s3-encryption"),
        (
            SSE,
            "",
            lambda i: i | {"rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]},
            "s3-encryption",
        ),
        (
            "aws:s3/bucketVersioning:BucketVersioning",
            "",
            lambda i: i | {"versioningConfiguration": {"status": "Suspended"}},
            "s3-versioning",
        ),
        (
            "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
            "",
            lambda i: i | {"restrictPublicBuckets": False},
            "s3-public-access-block",
        ),
        ("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "", lambda i: None, "s3-public-access-block"),
        ("aws:s3/bucketPolicy:BucketPolicy", "", lambda i: None, "s3-tls-only"),
        ("aws:rds/clusterInstance:ClusterInstance", "", lambda i: i | {"publiclyAccessible": True}, "rds-public"),
        ("aws:rds/cluster:Cluster", "", lambda i: i | {"storageEncrypted": False}, "rds-encryption"),
        (
            "aws:rds/cluster:Cluster",
            "",
            lambda i: {k: v for k, v in i.items() if k != "deletionProtection"},
            "rds-deletion-protection",
        ),
        ("aws:rds/cluster:Cluster", "", lambda i: i | {"backupRetentionPeriod": 1}, "rds-backups"),
        ("aws:rds/cluster:Cluster", "", lambda i: i | {"masterPassword": "hunter2"}, "rds-managed-password"),
        ("aws:ec2/vpc:Vpc", "", lambda i: i | {"tags": {"Name": "vpc"}}, "tags"),
        ("aws:iam/role:Role", "", lambda i: i | {"tags": i["tags"] | {"canopy:managed-by": "terraform"}}, "tags"),
        ("aws:eks/nodeGroup:NodeGroup", "", lambda i: {k: v for k, v in i.items() if k != "tags"}, "tags"),
        ("aws:ec2/subnet:Subnet", "-private-", lambda i: i | {"mapPublicIpOnLaunch": True}, "subnet-public-ip"),
        (
            "aws:eks/cluster:Cluster",
            "",
            lambda i: {k: v for k, v in i.items() if k != "encryptionConfig"},
            "eks-secrets-encryption",
        ),
        (
            "aws:eks/cluster:Cluster",
            "",
            lambda i: i | {"encryptionConfig": {"resources": ["secrets"], "provider": {}}},
            "eks-secrets-encryption",
        ),
        (
            "aws:eks/cluster:Cluster",
            "",
            lambda i: i | {"vpcConfig": {**i["vpcConfig"], "endpointPublicAccess": True}},
            "eks-private-endpoint",
        ),
        (
            "aws:eks/cluster:Cluster",
            "",
            lambda i: i | {"vpcConfig": {**i["vpcConfig"], "endpointPrivateAccess": False}},
            "eks-private-endpoint",
        ),
        ("aws:kms/key:Key", "", lambda i: i | {"enableKeyRotation": False}, "kms-rotation"),
    ],
)
def test_each_check_flags_a_bad_cell_resource(
    declared_cell: DeclaredCell, typ: str, name: str, edit: Edit, rule: str
) -> None:
    violations = check_resources(_edited(declared_cell.records, typ, edit, name))
    assert _rules(violations) == {rule}, violations
    if typ != SSE and not typ.startswith("aws:s3/bucket"):
        assert {v.resource_type for v in violations} == {typ}


def test_public_ips_on_a_subnet_nobody_private_uses_are_allowed(declared_cell: DeclaredCell) -> None:
    records = _edited(
        declared_cell.records, "aws:ec2/subnet:Subnet", lambda i: i | {"mapPublicIpOnLaunch": True}, "-public-"
    )
    assert check_resources(records) == []


def test_api_endpoint_open_only_to_known_networks_passes(declared_cell: DeclaredCell) -> None:
    def restricted(inputs: dict[str, Any]) -> dict[str, Any]:
        vpc = inputs["vpcConfig"] | {"endpointPublicAccess": True, "publicAccessCidrs": ["203.0.113.0/24"]}
        return inputs | {"vpcConfig": vpc}

    assert check_resources(_edited(declared_cell.records, "aws:eks/cluster:Cluster", restricted)) == []
    world = _edited(
        declared_cell.records,
        "aws:eks/cluster:Cluster",
        lambda i: restricted(i) | {"vpcConfig": restricted(i)["vpcConfig"] | {"publicAccessCidrs": ["0.0.0.0/0"]}},
    )
    assert _rules(check_resources(world)) == {"eks-private-endpoint"}


WORKSPACE = uuid.UUID("6f0c5a8e-2b1d-4c3e-9f7a-0123456789ab")
ORG = uuid.UUID("0b6ad2a4-1b6c-4c1c-9e4e-1d0c7c6d1f00")


def _silo_database(**inputs: Any) -> ResourceRecord:
    good = {
        "storageEncrypted": True,
        "deletionProtection": True,
        "backupRetentionPeriod": 7,
        "publiclyAccessible": False,
        "manageMasterUserPassword": True,
        "tags": workspace_tags(WORKSPACE, ORG, "enterprise", None),
    }
    return ResourceRecord("aws:rds/instance:Instance", "silo", good | inputs, "db-1")


def test_a_good_silo_database_passes() -> None:
    assert check_resources([_silo_database()]) == []


def test_a_public_unencrypted_silo_database_is_flagged() -> None:
    bad = _silo_database(publiclyAccessible=True, storageEncrypted=False, deletionProtection=False)
    assert _rules(check_resources([bad])) == {"rds-public", "rds-encryption", "rds-deletion-protection"}


def test_workspace_resources_need_every_workspace_tag() -> None:
    tags = workspace_tags(WORKSPACE, ORG, "professional", "euw1-a")
    assert _rules(check_resources([_silo_database(tags={**tags, "canopy:org": ""})])) == {"tags"}
    assert _rules(check_resources([_silo_database(tags={**tags, "canopy:cell": ""})])) == {"tags"}
    no_tier = {k: v for k, v in tags.items() if k != "canopy:tier"}
    (violation,) = check_resources([_silo_database(tags=no_tier)])
    assert violation.message == "missing tags: canopy:tier"


def test_a_bare_unencrypted_bucket_is_flagged_on_every_count() -> None:
    bucket = ResourceRecord("aws:s3/bucket:Bucket", "bare", {"bucket": "bare"}, "bare")
    assert _rules(check_resources([bucket])) == {
        "tags",
        "s3-encryption",
        "s3-versioning",
        "s3-public-access-block",
        "s3-tls-only",
    }


def test_an_unrelated_resource_type_is_ignored() -> None:
    assert check_resources([ResourceRecord("aws:ec2/route:Route", "r", {})]) == []
