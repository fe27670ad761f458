"""Enterprise silo providers against moto: security settings read back through boto3, exactly-once
ensures, crash re-entry, teardown in reverse and the leak sweep.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from control_plane.providers.aws.sets import SiloProviders
from control_plane.providers.aws.sweep import LeakSweep
from control_plane.providers.base import ProviderError, WorkspaceSpec
from infra.conventions import RDS, bucket_policy, tags_from_list, workspace_names, workspace_tags
from tests.aws.conftest import SILO_DOMAIN, CloudCell
from tests.harness.moto import ACCOUNT_ID

INGRESS = "k8s-ingress-123.elb.eu-west-1.amazonaws.com"
Make = Callable[..., WorkspaceSpec]


def provision(silo: SiloProviders, ws: WorkspaceSpec) -> dict[str, tuple[str, ...]]:
    """Ensure every silo resource in step order; what each step created."""
    created = {}
    for name in ("kms", "storage", "database", "cluster", "identity"):
        created[name] = getattr(silo, name).ensure(ws).created
    created["dns"] = silo.dns.ensure(ws, {"ingress_hostname": INGRESS}).created
    return created


def tear_down(silo: SiloProviders, ws: WorkspaceSpec) -> None:
    """Teardown in reverse step order."""
    silo.dns.teardown(ws)
    for name in ("identity", "cluster", "database", "storage", "kms"):
        getattr(silo, name).teardown(ws)


def inventory(silo: SiloProviders, sweep: LeakSweep, cell: CloudCell, ws: WorkspaceSpec) -> list[str]:
    """Everything that exists for ``ws``: the sweep's view and each provider's own."""
    record = [(cell.silo_zone_id, f"{ws.slug}.{SILO_DOMAIN}")]
    providers = (silo.kms, silo.storage, silo.database, silo.cluster, silo.identity, silo.dns)
    own = [item for p in providers for item in p.leftovers(ws)]
    return sorted(sweep.leftovers_for(ws.id, record)) + sorted(own)


def expected_tags(ws: WorkspaceSpec) -> dict[str, str]:
    return workspace_tags(ws.id, ws.organization_id, ws.tier, ws.cell)


def test_silo_resources_are_secure_tagged_and_created_exactly_once(
    silo: SiloProviders, sweep: LeakSweep, aws_cell: CloudCell, workspace: Make, cleanup: list[Any]
) -> None:
    ws = workspace("enterprise")
    cleanup.append(lambda: tear_down(silo, ws))
    first = provision(silo, ws)
    assert first == {
        "kms": ("kms_key", "kms_alias"),
        "storage": ("bucket",),
        "database": ("db_subnet_group", "db_security_group", "secret", "instance"),
        "cluster": ("cluster_role", "node_role", "eks_cluster", "eks_nodegroup", "oidc_provider"),
        "identity": ("storage_policy", "app_role"),
        "dns": ("dns_record",),
    }
    before = inventory(silo, sweep, aws_cell, ws)
    assert len(before) > 10
    again = provision(silo, ws)
    assert all(created == () for created in again.values()), again
    assert inventory(silo, sweep, aws_cell, ws) == before

    names = workspace_names("test", ws.id)
    tags = expected_tags(ws)
    key_arn = _assert_key(names.kms_alias, tags)
    _assert_bucket(names.bucket, key_arn, tags)
    _assert_database(silo, ws, names.rds_instance, names.secret, key_arn, tags, aws_cell)
    _assert_cluster(names.eks_cluster, names.eks_nodegroup, key_arn, tags, aws_cell)
    _assert_workload_role(names.app_role, silo_oidc_provider(names.eks_cluster), names.namespace, tags)
    _assert_attached(names.app_role, bucket_policy(f"arn:aws:s3:::{names.bucket}", key_arn), tags)
    _assert_record(aws_cell.silo_zone_id, f"{ws.slug}.{SILO_DOMAIN}")


def silo_oidc_provider(cluster: str) -> str:
    """The ARN of the IAM OIDC provider of ``cluster``'s issuer, asserted to exist for the STS audience."""
    issuer = boto3.client("eks").describe_cluster(name=cluster)["cluster"]["identity"]["oidc"]["issuer"]
    arn = f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/{issuer.removeprefix('https://')}"
    provider = boto3.client("iam").get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    assert provider["ClientIDList"] == ["sts.amazonaws.com"]
    return arn


def _assert_workload_role(name: str, oidc_provider: str, namespace: str, tags: dict[str, str]) -> None:
    """The pods' role: under /canopy/, tagged, assumable only by the namespace's workspace-server service account."""
    iam = boto3.client("iam")
    role = iam.get_role(RoleName=name)["Role"]
    assert role["Path"] == "/canopy/" and tags_from_list(iam.list_role_tags(RoleName=name)["Tags"]) == tags
    issuer = oidc_provider.split(":oidc-provider/")[1]
    assert role["AssumeRolePolicyDocument"] == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": oidc_provider},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{issuer}:sub": f"system:serviceaccount:{namespace}:workspace-server",
                        f"{issuer}:aud": "sts.amazonaws.com",
                    }
                },
            }
        ],
    }


def _assert_attached(role: str, document: dict[str, Any], tags: dict[str, str]) -> None:
    """Exactly one policy on ``role``: ``document``, tagged, under /canopy/."""
    iam = boto3.client("iam")
    [attached] = iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]
    policy = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]
    assert (
        policy["Path"] == "/canopy/" and tags_from_list(iam.list_policy_tags(PolicyArn=policy["Arn"])["Tags"]) == tags
    )
    version = iam.get_policy_version(PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"])["PolicyVersion"]
    assert version["Document"] == document


def _assert_key(alias: str, tags: dict[str, str]) -> str:
    kms = boto3.client("kms")
    key = kms.describe_key(KeyId=alias)["KeyMetadata"]
    assert key["KeyState"] == "Enabled" and key["KeyManager"] == "CUSTOMER"
    assert kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is True
    assert tags_from_list(kms.list_resource_tags(KeyId=key["KeyId"])["Tags"]) == tags
    return str(key["Arn"])


def _assert_bucket(bucket: str, key_arn: str, tags: dict[str, str]) -> None:
    s3 = boto3.client("s3")
    [rule] = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn}
    assert rule["BucketKeyEnabled"] is True
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == dict.fromkeys(
        ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
    )
    ownership = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"]
    assert ownership == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])  # moto stores it; AWS enforces it
    [insecure] = [s for s in policy["Statement"] if "aws:SecureTransport" in json.dumps(s.get("Condition", {}))]
    assert insecure["Effect"] == "Deny" and insecure["Principal"] == "*" and insecure["Action"] == "s3:*"
    assert insecure["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert sorted(insecure["Resource"]) == [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]
    assert tags_from_list(s3.get_bucket_tagging(Bucket=bucket)["TagSet"]) == tags


def _assert_database(
    silo: SiloProviders,
    ws: WorkspaceSpec,
    instance_id: str,
    secret_name: str,
    key_arn: str,
    tags: dict[str, str],
    cell: CloudCell,
) -> None:
    rds = boto3.client("rds")
    [db] = rds.describe_db_instances(DBInstanceIdentifier=instance_id)["DBInstances"]
    assert db["StorageEncrypted"] is True and db["KmsKeyId"] == key_arn
    assert db["DeletionProtection"] is True and db["PubliclyAccessible"] is False
    assert db["BackupRetentionPeriod"] == RDS.backup_retention_days and db["Engine"] == "postgres"
    subnets = {s["SubnetIdentifier"] for s in db["DBSubnetGroup"]["Subnets"]}
    assert subnets == set(cell.outputs.private_subnet_ids)
    assert tags_from_list(rds.list_tags_for_resource(ResourceName=db["DBInstanceArn"])["TagList"]) == tags
    [group] = boto3.client("ec2").describe_security_groups(GroupIds=[db["VpcSecurityGroups"][0]["VpcSecurityGroupId"]])[
        "SecurityGroups"
    ]
    [rule] = group["IpPermissions"]
    assert (rule["FromPort"], rule["ToPort"], rule["IpRanges"][0]["CidrIp"]) == (5432, 5432, "10.42.0.0/16")
    sm = boto3.client("secretsmanager")
    secret = sm.describe_secret(SecretId=secret_name)
    assert secret["KmsKeyId"] == key_arn and tags_from_list(secret["Tags"]) == tags
    credentials = json.loads(sm.get_secret_value(SecretId=secret_name)["SecretString"])
    assert credentials["username"] == RDS.master_username and len(credentials["password"]) >= 32
    url = silo.database.connection_url(ws)
    assert credentials["password"] in url and db["Endpoint"]["Address"] in url and url.endswith("sslmode=require")


def _assert_cluster(name: str, nodegroup: str, key_arn: str, tags: dict[str, str], cell: CloudCell) -> None:
    eks = boto3.client("eks")
    cluster = eks.describe_cluster(name=name)["cluster"]
    assert cluster["status"] == "ACTIVE" and cluster["tags"] == tags
    assert cluster["encryptionConfig"] == [{"resources": ["secrets"], "provider": {"keyArn": key_arn}}]
    vpc = cluster["resourcesVpcConfig"]
    assert vpc["endpointPrivateAccess"] is True and vpc["endpointPublicAccess"] is False
    assert vpc["subnetIds"] == list(cell.outputs.private_subnet_ids)
    group = eks.describe_nodegroup(clusterName=name, nodegroupName=nodegroup)["nodegroup"]
    assert group["status"] == "ACTIVE" and group["subnets"] == list(cell.outputs.private_subnet_ids)
    assert group["tags"] == tags
    iam = boto3.client("iam")
    for role_arn in (cluster["roleArn"], group["nodeRole"]):
        role_name = role_arn.rsplit("/", 1)[1]
        assert iam.get_role(RoleName=role_name)["Role"]["Path"] == "/canopy/"
        assert tags_from_list(iam.list_role_tags(RoleName=role_name)["Tags"]) == tags
    provider = silo_oidc_provider(name)
    assert tags_from_list(iam.list_open_id_connect_provider_tags(OpenIDConnectProviderArn=provider)["Tags"]) == tags


def _assert_record(zone_id: str, name: str) -> None:
    records = boto3.client("route53").list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    [record] = [r for r in records if r["Name"].rstrip(".") == name]
    assert record["Type"] == "CNAME" and record["ResourceRecords"] == [{"Value": INGRESS}]


def test_teardown_in_reverse_leaves_only_the_final_snapshot(
    silo: SiloProviders, sweep: LeakSweep, aws_cell: CloudCell, workspace: Make, cleanup: list[Any]
) -> None:
    ws = workspace("enterprise")
    cleanup.append(lambda: tear_down(silo, ws))
    provision(silo, ws)
    names = workspace_names("test", ws.id)
    key_id = boto3.client("kms").describe_key(KeyId=names.kms_alias)["KeyMetadata"]["KeyId"]
    _write_versions(names.bucket)
    tear_down(silo, ws)
    tear_down(silo, ws)  # idempotent

    assert inventory(silo, sweep, aws_cell, ws) == []
    [snapshot] = boto3.client("rds").describe_db_snapshots(DBSnapshotIdentifier=silo.database.final_snapshot(ws))[
        "DBSnapshots"
    ]
    assert snapshot["Encrypted"] is True and snapshot["DBInstanceIdentifier"] == names.rds_instance
    key = boto3.client("kms").describe_key(KeyId=key_id)["KeyMetadata"]
    assert key["KeyState"] == "PendingDeletion"
    assert boto3.client("secretsmanager").describe_secret(SecretId=names.secret)["DeletedDate"]


def _write_versions(bucket: str) -> None:
    """Two versions and a delete marker (the bucket keeps its TLS-only policy: the test moto server counts its
    requests as sent over TLS, see ``tests/harness/moto_main.py``)."""
    s3 = boto3.client("s3")
    for body in (b"one", b"two"):
        s3.put_object(Bucket=bucket, Key="files/a.txt", Body=body)
    s3.delete_object(Bucket=bucket, Key="files/a.txt")
    assert len(s3.list_object_versions(Bucket=bucket)["Versions"]) == 2


def test_the_sweep_reports_what_teardown_left_behind(
    silo: SiloProviders, sweep: LeakSweep, workspace: Make, cleanup: list[Any]
) -> None:
    ws = workspace("enterprise")
    names = workspace_names("test", ws.id)
    tags = [{"Key": k, "Value": v} for k, v in expected_tags(ws).items()]
    s3, iam, eks = boto3.client("s3"), boto3.client("iam"), boto3.client("eks")
    s3.create_bucket(Bucket=f"{names.bucket}-leak", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    cleanup.append(lambda: s3.delete_bucket(Bucket=f"{names.bucket}-leak"))
    s3.put_bucket_tagging(Bucket=f"{names.bucket}-leak", Tagging={"TagSet": tags})
    role = iam.create_role(RoleName=names.app_role, Path="/canopy/", AssumeRolePolicyDocument="{}", Tags=tags)
    cleanup.append(lambda: iam.delete_role(RoleName=names.app_role))
    cluster = eks.create_cluster(
        name=names.eks_cluster,
        roleArn=role["Role"]["Arn"],
        resourcesVpcConfig={"subnetIds": []},
        tags=expected_tags(ws),
    )
    cleanup.append(lambda: eks.delete_cluster(name=names.eks_cluster))
    assert cluster["cluster"]["status"] == "ACTIVE"
    provider = iam.create_open_id_connect_provider(Url=cluster["cluster"]["identity"]["oidc"]["issuer"], Tags=tags)
    arn = provider["OpenIDConnectProviderArn"]
    cleanup.append(lambda: iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=arn))

    found = sweep.leftovers_for(ws.id)
    assert found == [
        f"arn:aws:s3:::{names.bucket}-leak",
        f"eks cluster {names.eks_cluster}",
        f"iam role {role['Role']['Arn']}",
        f"iam oidc provider {arn}",
    ]
    other = workspace("enterprise")
    assert sweep.leftovers_for(other.id) == []


def test_key_created_by_a_run_that_died_before_its_alias_is_adopted(
    silo: SiloProviders, workspace: Make, cleanup: list[Any]
) -> None:
    ws = workspace("enterprise")
    cleanup.append(lambda: silo.kms.teardown(ws))
    first = silo.kms.ensure(ws)
    boto3.client("kms").delete_alias(AliasName=first.outputs["kms_alias"])  # as if the run died before it
    again = silo.kms.ensure(ws)
    assert again.created == ("kms_alias",)
    assert again.outputs["kms_key_arn"] == first.outputs["kms_key_arn"]


def test_database_ensure_is_reentrant_after_partial_runs(
    silo: SiloProviders, workspace: Make, cleanup: list[Any]
) -> None:
    ws = workspace("enterprise")
    cleanup += [lambda: silo.kms.teardown(ws), lambda: silo.database.teardown(ws)]
    names = workspace_names("test", ws.id)
    silo.kms.ensure(ws)
    silo.database.ensure(ws)
    rds, sm = boto3.client("rds"), boto3.client("secretsmanager")
    password = _current_password(names.secret)

    # Died after storing the secret, before creating the instance: the instance gets the stored password.
    rds.modify_db_instance(DBInstanceIdentifier=names.rds_instance, DeletionProtection=False, ApplyImmediately=True)
    rds.delete_db_instance(DBInstanceIdentifier=names.rds_instance, SkipFinalSnapshot=True)
    assert silo.database.ensure(ws).created == ("instance",)
    assert _current_password(names.secret) == password

    # The secret was lost while the instance lives on: a new password is set on it and stored.
    sm.delete_secret(SecretId=names.secret, ForceDeleteWithoutRecovery=True)
    assert silo.database.ensure(ws).created == ("secret",)
    replaced = _current_password(names.secret)
    assert replaced != password

    # A rotation that died after staging its new version: the next ensure finishes it.
    sm.put_secret_value(
        SecretId=names.secret,
        SecretString=json.dumps({"username": RDS.master_username, "password": "pending-password-123"}),
        VersionStages=["AWSPENDING"],
    )
    assert silo.database.ensure(ws).created == ()
    assert _current_password(names.secret) == "pending-password-123"
    assert all("AWSPENDING" not in stages for stages in _stages(names.secret))

    silo.database.rotate_password(ws)
    assert _current_password(names.secret) not in ("pending-password-123", replaced)
    assert all("AWSPENDING" not in stages for stages in _stages(names.secret))

    # Someone lifted deletion protection and backups: the next ensure restores them.
    rds.modify_db_instance(
        DBInstanceIdentifier=names.rds_instance,
        DeletionProtection=False,
        BackupRetentionPeriod=0,
        ApplyImmediately=True,
    )
    silo.database.ensure(ws)
    [db] = rds.describe_db_instances(DBInstanceIdentifier=names.rds_instance)["DBInstances"]
    assert db["DeletionProtection"] is True and db["BackupRetentionPeriod"] == RDS.backup_retention_days


def _current_password(secret: str) -> str:
    value = boto3.client("secretsmanager").get_secret_value(SecretId=secret, VersionStage="AWSCURRENT")
    return str(json.loads(value["SecretString"])["password"])


def _stages(secret: str) -> list[list[str]]:
    return list(boto3.client("secretsmanager").describe_secret(SecretId=secret)["VersionIdsToStages"].values())


def test_silo_steps_refuse_what_they_cannot_do(silo: SiloProviders, workspace: Make) -> None:
    elsewhere = workspace("enterprise")
    elsewhere = type(elsewhere)(**{**elsewhere.__dict__, "region": "us-west-2"})
    with pytest.raises(ProviderError, match="provisioned in eu-west-1, not in us-west-2"):
        silo.kms.ensure(elsewhere)
    ws = workspace("enterprise")
    with pytest.raises(ProviderError, match="KMS key does not exist yet"):
        silo.storage.ensure(ws)
    with pytest.raises(ProviderError, match="no ingress hostname"):
        silo.dns.ensure(ws, {})
