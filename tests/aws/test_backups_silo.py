"""Enterprise (silo) backups on moto: an RDS snapshot under the tenant key plus the bucket's objects, restored into
another silo and in place with the target's settings, point-in-time recovery, verify, discard, and the tenant key
kept while backups need it.

moto restores no data into an RDS instance (its endpoints have no database behind them): what is checked of the
database is what RDS reports (identifier, key, subnet group, security group, tags, deletion protection, a new
instance). moto does not show the master password through any call, so its reset is not observed here.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from control_plane.providers.aws.common import Aws
from control_plane.providers.aws.rds import TAG_RESTORE
from control_plane.providers.aws.sets import SiloProviders
from control_plane.providers.aws.sweep import LeakSweep
from control_plane.providers.base import ProviderError, WorkspaceSpec
from infra.conventions import (
    RDS,
    TAG_DRILL_OF,
    backup_snapshot,
    drill_instance,
    tags_from_list,
    workspace_names,
    workspace_tags,
)
from tests.aws.test_backups_pooled import ensure_backup_bucket
from tests.harness.moto import REGION

Make = Callable[..., WorkspaceSpec]
Provisioned = Callable[[], tuple[WorkspaceSpec, dict[str, Any]]]


@pytest.fixture
def provisioned(workspace: Make, silo: SiloProviders, cleanup: list[Any]) -> Provisioned:
    """Factory: an enterprise silo's key, bucket and database; its outputs."""

    def make() -> tuple[WorkspaceSpec, dict[str, Any]]:
        ws = workspace("enterprise")
        cleanup.append(lambda: [getattr(silo, n).teardown(ws) for n in ("database", "storage", "kms")])
        outputs: dict[str, Any] = {}
        for name in ("kms", "storage", "database"):
            outputs |= getattr(silo, name).ensure(ws).outputs
        return ws, outputs

    return make


def instance(ws: WorkspaceSpec) -> dict[str, Any]:
    rds = boto3.client("rds")
    [found] = rds.describe_db_instances(DBInstanceIdentifier=workspace_names("test", ws.id).rds_instance)["DBInstances"]
    return dict(found)


def objects(outputs: dict[str, Any]) -> dict[str, bytes]:
    """Every object of the silo's bucket, each asserted under the silo's key."""
    s3 = boto3.client("s3")
    found = {}
    for item in s3.list_objects_v2(Bucket=outputs["bucket"]).get("Contents", []):
        got = s3.get_object(Bucket=outputs["bucket"], Key=item["Key"])
        assert got["SSEKMSKeyId"] == outputs["kms_key_arn"]
        found[item["Key"]] = got["Body"].read()
    return found


def mark_old(ws: WorkspaceSpec) -> None:
    """Tag the instance ``test:old``: an instance a restore made has only ``ws``'s tags (moto copies the source's
    resource id into a restored instance, so that cannot tell them apart)."""
    arn = instance(ws)["DBInstanceArn"]
    boto3.client("rds").add_tags_to_resource(ResourceName=arn, Tags=[{"Key": "test:old", "Value": "1"}])


def assert_settings_of(ws: WorkspaceSpec, outputs: dict[str, Any], found: dict[str, Any]) -> None:
    """The instance is ``ws``'s: its identifier, key, subnet group, security group, tags, protection, backups."""
    names = workspace_names("test", ws.id)
    assert found["DBInstanceIdentifier"] == names.rds_instance and found["DBInstanceStatus"] == "available"
    assert found["StorageEncrypted"] is True and found["KmsKeyId"] == outputs["kms_key_arn"]
    assert found["DBSubnetGroup"]["DBSubnetGroupName"] == names.db_subnet_group
    groups = boto3.client("ec2").describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [names.db_security_group]}]
    )["SecurityGroups"]
    assert [g["VpcSecurityGroupId"] for g in found["VpcSecurityGroups"]] == [groups[0]["GroupId"]]
    assert tags_from_list(found["TagList"]) == workspace_tags(ws.id, ws.organization_id, "enterprise", None)
    assert found["DeletionProtection"] is True and found["PubliclyAccessible"] is False
    assert found["BackupRetentionPeriod"] == RDS.backup_retention_days
    assert found["DBName"] == "workspace"


def test_silo_backup_restores_into_another_silo_and_in_place(silo: SiloProviders, provisioned: Provisioned) -> None:
    backup = silo.backup
    ensure_backup_bucket(backup)
    (a, out_a), (b, out_b) = provisioned(), provisioned()
    s3 = boto3.client("s3")
    for key, body in (("data/f1.bin", os.urandom(5000)), ("data/teams/t/f2.txt", b"hello"), ("data/empty", b"")):
        s3.put_object(Bucket=out_a["bucket"], Key=key, Body=body)  # the bucket's default: SSE-KMS, a's key
    s3.put_object(Bucket=out_b["bucket"], Key="data/b-only", Body=b"b")
    at_backup = objects(out_a)

    backup_id = uuid.uuid4()
    database = backup.back_up_database(a, out_a, backup_id)
    files = backup.back_up_files(a, out_a, backup_id)
    snapshot_id = backup_snapshot("test", a.id, backup_id)
    assert database.sha256 is None and database.location == {
        "rds_snapshot": snapshot_id,
        "region": REGION,
        "kms_key_arn": out_a["kms_key_arn"],
        "workspace_id": str(a.id),
    }
    rds = boto3.client("rds")
    [snapshot] = rds.describe_db_snapshots(DBSnapshotIdentifier=snapshot_id)["DBSnapshots"]
    assert snapshot["Status"] == "available" and snapshot["Encrypted"] is True
    assert snapshot["KmsKeyId"] == out_a["kms_key_arn"]
    assert tags_from_list(snapshot["TagList"]) == workspace_tags(a.id, a.organization_id, "enterprise", None)
    assert files.location["kms_key_arn"] == out_a["kms_key_arn"]
    assert (
        s3.head_object(Bucket=files.location["bucket"], Key=files.location["key"])["SSEKMSKeyId"]
        == out_a["kms_key_arn"]
    )
    assert backup.verify(database) is None and backup.verify(files) is None
    assert backup.back_up_database(a, out_a, backup_id) == database  # a re-run adopts the snapshot

    s3.put_object(Bucket=out_a["bucket"], Key="data/after", Body=b"after the backup")
    for ws in (a, b):
        mark_old(ws)
    secrets = boto3.client("secretsmanager")
    passwords = {ws.id: secrets.get_secret_value(SecretId=workspace_names("test", ws.id).secret) for ws in (a, b)}

    for ws, outputs in ((b, out_b), (a, out_a)):  # into another silo (another key), then in place
        backup.restore_database(ws, outputs, database)
        backup.restore_files(ws, outputs, files)
        assert_settings_of(ws, outputs, instance(ws))  # a new instance (the old one's mark is gone), ws's settings
        assert objects(outputs) == at_backup
        current = secrets.get_secret_value(SecretId=workspace_names("test", ws.id).secret)
        assert current["SecretString"] == passwords[ws.id]["SecretString"]  # the target keeps its own password
    names_b = workspace_names("test", b.id)
    assert not rds.describe_db_snapshots(DBInstanceIdentifier=names_b.rds_instance, SnapshotType="manual")[
        "DBSnapshots"
    ]  # the copy under b's key is gone once restored
    assert silo.database.leftovers(b) == [
        f"rds instance {names_b.rds_instance}",
        f"secret {names_b.secret}",
        f"security group {names_b.db_security_group}",
        f"db subnet group {names_b.db_subnet_group}",
    ]  # nothing else: no staging instance

    for part in (database, files):
        backup.discard(part)
        backup.discard(part)
    assert backup.verify(database) == f"snapshot {snapshot_id} is missing"
    assert backup.verify(files) == f"backup object {files.location['key']} is missing"


def test_a_restore_that_died_after_deleting_the_old_instance_converges(
    silo: SiloProviders, provisioned: Provisioned
) -> None:
    ensure_backup_bucket(silo.backup)
    ws, outputs = provisioned()
    part = silo.backup.back_up_database(ws, outputs, uuid.uuid4())
    names = workspace_names("test", ws.id)
    snapshot = part.location["rds_snapshot"]
    # What a run leaves when it dies between deleting the old instance and renaming the new one.
    rds = boto3.client("rds")
    [group] = boto3.client("ec2").describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [names.db_security_group]}]
    )["SecurityGroups"]
    rds.restore_db_instance_from_db_snapshot(
        DBInstanceIdentifier=f"{names.rds_instance}-restoring",
        DBSnapshotIdentifier=snapshot,
        DBSubnetGroupName=names.db_subnet_group,
        VpcSecurityGroupIds=[group["GroupId"]],
        Tags=[{"Key": TAG_RESTORE, "Value": f"snapshot:{snapshot}"}],
    )
    rds.modify_db_instance(DBInstanceIdentifier=names.rds_instance, DeletionProtection=False, ApplyImmediately=True)
    rds.delete_db_instance(DBInstanceIdentifier=names.rds_instance, SkipFinalSnapshot=True)

    silo.backup.restore_database(ws, outputs, part)
    assert_settings_of(ws, outputs, instance(ws))  # renamed, then converged: protection, tags (marker removed)
    ids = [i["DBInstanceIdentifier"] for i in rds.describe_db_instances()["DBInstances"]]
    assert f"{names.rds_instance}-restoring" not in ids
    silo.backup.discard(part)


def test_point_in_time_recovery_within_the_window(silo: SiloProviders, provisioned: Provisioned) -> None:
    (a, out_a), (b, _) = provisioned(), provisioned()
    earliest, latest = silo.backup.restore_window(a)
    assert earliest <= latest
    created = instance(a)["InstanceCreateTime"]
    assert earliest == created  # younger than its retention: the window starts at its creation

    with pytest.raises(ProviderError, match="outside the restore window"):
        silo.backup.restore_to_time(a, a, latest - dt.timedelta(days=30))
    with pytest.raises(ProviderError, match="keeps the source's key"):
        silo.backup.restore_to_time(b, a, earliest)
    assert instance(a)["InstanceCreateTime"] == created  # refused before anything was touched

    mark_old(a)
    silo.backup.restore_to_time(a, a, earliest)
    assert_settings_of(a, out_a, instance(a))


def test_the_tenant_key_outlives_the_silo_while_its_backups_need_it(
    silo: SiloProviders, sweep: LeakSweep, provisioned: Provisioned
) -> None:
    ensure_backup_bucket(silo.backup)
    ws, outputs = provisioned()
    boto3.client("s3").put_object(Bucket=outputs["bucket"], Key="data/f", Body=b"f")
    backup_id = uuid.uuid4()
    parts = [silo.backup.back_up_database(ws, outputs, backup_id), silo.backup.back_up_files(ws, outputs, backup_id)]
    for name in ("database", "storage", "kms"):  # teardown, as deletion does once the final backup is taken
        getattr(silo, name).teardown(ws)
    kms = boto3.client("kms")
    key = outputs["kms_key_arn"]
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Enabled"
    tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key)["Tags"]}
    assert tags["canopy:kept-for"] == "backups" and tags["canopy:workspace"] == str(ws.id)
    assert silo.kms.leftovers(ws) == [] and sweep.leftovers_for(ws.id) == []
    assert all(silo.backup.verify(part) is None for part in parts)  # still readable: the key is there
    final = f"{workspace_names('test', ws.id).rds_instance}-final"

    silo.backup.discard(parts[0])
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Enabled"  # the files part still needs it
    silo.backup.discard(parts[1])
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    assert not boto3.client("rds").describe_db_snapshots(DBInstanceIdentifier=final.removesuffix("-final"))[
        "DBSnapshots"
    ]  # the final snapshot went with the last backup

    # A silo without backups: its key is scheduled for deletion at teardown, as before.
    other, other_outputs = provisioned()
    for name in ("database", "storage", "kms"):
        getattr(silo, name).teardown(other)
    assert kms.describe_key(KeyId=other_outputs["kms_key_arn"])["KeyMetadata"]["KeyState"] == "PendingDeletion"


def test_a_drill_restores_a_snapshot_into_a_tagged_scratch_instance_deleted_afterwards(
    silo: SiloProviders, provisioned: Provisioned
) -> None:
    ws, outputs = provisioned()
    database = silo.backup.back_up_database(ws, outputs, uuid.uuid4())
    scratch = WorkspaceSpec(
        id=uuid.uuid4(),
        slug="drill-x",
        organization_id=ws.organization_id,
        tier=ws.tier,
        region=ws.region,
        display_name="Restore drill",
    )
    rds = boto3.client("rds")
    with silo.backup.scratch_restore(scratch, database) as restored:
        assert restored.name == drill_instance("test", ws.id, scratch.id) and restored.url is None
        assert restored.problems == []
        [found] = rds.describe_db_instances(DBInstanceIdentifier=restored.name)["DBInstances"]
        assert found["DBInstanceStatus"] == "available" and found["StorageEncrypted"] is True
        assert found["KmsKeyId"] == outputs["kms_key_arn"]  # the tenant key
        assert found["PubliclyAccessible"] is False  # (moto keeps the source's deletion protection; it is lifted)
        assert found["DBSubnetGroup"]["DBSubnetGroupName"] == workspace_names("test", ws.id).db_subnet_group
        tags = workspace_tags(scratch.id, ws.organization_id, "enterprise", None) | {TAG_DRILL_OF: str(ws.id)}
        assert tags_from_list(found["TagList"]) == tags
        assert LeakSweep(Aws(), REGION).leftovers_for(scratch.id)  # the scratch id's, not the workspace's
    assert not rds.describe_db_instances(Filters=[{"Name": "db-instance-id", "Values": [restored.name]}])["DBInstances"]
    assert not [s for s in rds.describe_db_snapshots()["DBSnapshots"] if s["DBInstanceIdentifier"] == restored.name]
    assert LeakSweep(Aws(), REGION).leftovers_for(scratch.id) == []
    silo.backup.discard(database)
