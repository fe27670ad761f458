"""The RDS PostgreSQL instance of an enterprise silo and its master credentials.

The master password is generated once and lives only in the Secrets Manager secret
``canopy/<env>/<short id>/database`` (encrypted with the tenant key); every later run reads it back.
Crash safety, by what a run finds:

- neither secret nor instance: create the secret, then the instance with its password;
- secret, no instance (died in between): create the instance with the secret's password;
- instance, no secret (the secret was lost): set a new master password on the instance, then store it
  in a new secret. Dying in between loses a password nobody has read, and the next run resets again;
- a version staged ``AWSPENDING`` but not ``AWSCURRENT`` (a :meth:`SiloDatabase.rotate_password` that
  died): set that password on the instance again and promote it. Rotation moves version stages itself
  and never calls ``rotate_secret`` (which needs a rotation Lambda).

Restores (:meth:`SiloDatabase.restore_snapshot`, :meth:`SiloDatabase.restore_to_point_in_time`) replace the
instance: a new one is made as ``<name>-restoring`` tagged ``canopy:restore`` = what it holds, then the old one is
deleted (no final snapshot: its content is replaced on purpose), the new one renamed, the master password set to the
secret's, settings and tags converged and the ``canopy:restore`` tag removed.
A re-run finds where the last one stopped: the renamed instance still tagged for this restore (only the password
and tag are left), the staging instance of this restore (a staging instance of another is deleted first), or
nothing done yet.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import secrets
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import quote

from control_plane.providers.aws.common import Aws, SiloConfig, absent, tags_of, tolerating
from control_plane.providers.aws.kms import SiloKms
from control_plane.providers.base import Cursors, Drift, Ensured, ProviderError, ScratchDatabase, Watched, WorkspaceSpec
from infra.conventions import (
    RDS,
    TAG_DRILL_OF,
    WorkspaceNames,
    drill_instance,
    tag_list,
    tags_from_list,
    workspace_names,
)

DATABASE_NAME = "workspace"
SECRET_DELETION_DAYS = 7
READY_STATES = frozenset(
    {"available", "backing-up", "modifying", "storage-optimization", "resetting-master-credentials"}
)
FAILED_STATES = frozenset({"failed", "incompatible-parameters", "incompatible-restore", "deleting"})
SNAPSHOT_FAILED_STATES = frozenset({"failed", "error", "deleting"})
TAG_RESTORE = "canopy:restore"
STAGING_SUFFIX = "-restoring"


def new_password() -> str:
    """43 URL-safe characters: within RDS's rules (no ``/``, ``"``, ``@`` or space)."""
    return secrets.token_urlsafe(32)


def instance_drift(instance: dict[str, Any] | None) -> str | None:
    """What is wrong with a silo's RDS instance as ``DescribeDBInstances`` lists it, among what its ensure checks
    and repairs (None: nothing)."""
    if instance is None:
        return "is gone"
    if instance.get("DBInstanceStatus") in FAILED_STATES:
        return f"is {instance['DBInstanceStatus']}"
    if not instance.get("StorageEncrypted"):
        return "is not encrypted"
    if instance.get("DeletionProtection") != RDS.deletion_protection:
        return "lost its deletion protection"
    if instance.get("BackupRetentionPeriod") != RDS.backup_retention_days:
        return "has another backup retention"
    return None


class SiloDatabase:
    """``canopy-<env>-<short id>``: encrypted with the tenant key, deletion protection, backups kept
    ``RDS.backup_retention_days``, never public, in a DB subnet group of the private subnets, behind a
    security group that admits PostgreSQL from inside the VPC only.

    Teardown lifts deletion protection (only there), deletes the instance with a final snapshot
    ``<name>-final`` (kept: it is the last backup), then the security group, subnet group and secret
    (recoverable for 7 days, like the key).
    """

    def __init__(self, aws: Aws, config: SiloConfig, kms: SiloKms) -> None:
        self._aws = aws
        self._config = config
        self._kms = kms

    def _client(self, service: str) -> Any:
        return self._aws.client(service, self._config.region)

    # -- reading --------------------------------------------------------------------------------

    def _instance(self, names: WorkspaceNames) -> dict[str, Any] | None:
        return self._instance_named(names.rds_instance)

    def _instance_named(self, identifier: str) -> dict[str, Any] | None:
        rds = self._client("rds")
        found = absent(
            lambda: rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"], "DBInstanceNotFound"
        )
        return dict(found[0]) if found else None

    def _secret(self, names: WorkspaceNames) -> dict[str, Any] | None:
        """The secret's description, unless it is missing or scheduled for deletion."""
        sm = self._client("secretsmanager")
        found = absent(lambda: sm.describe_secret(SecretId=names.secret), "ResourceNotFoundException")
        return None if found is None or found.get("DeletedDate") else dict(found)

    def _password(self, secret_id: str, stage: str = "AWSCURRENT") -> str:
        value = self._client("secretsmanager").get_secret_value(SecretId=secret_id, VersionStage=stage)
        return str(json.loads(value["SecretString"])["password"])

    def connection_url(self, ws: WorkspaceSpec) -> str:
        names = self._config.names(ws)
        instance = self._instance(names)
        if instance is None or "Endpoint" not in instance:
            raise ProviderError("the workspace's database instance has no endpoint yet")
        password = quote(self._password(names.secret), safe="")
        endpoint = instance["Endpoint"]
        return (
            f"postgresql://{RDS.master_username}:{password}@{endpoint['Address']}:{endpoint['Port']}"
            f"/{DATABASE_NAME}?sslmode=require"
        )

    # -- ensure ---------------------------------------------------------------------------------

    def ensure(self, ws: WorkspaceSpec) -> Ensured:
        names = self._config.names(ws)
        key_arn = self._kms.key_arn(ws)
        created: list[str] = []
        subnet_group = self._ensure_subnet_group(ws, names, created)
        security_group = self._ensure_security_group(ws, names, subnet_group, created)
        instance = self._instance(names)
        secret = self._secret(names)
        if secret is None:
            password = new_password()
            if instance is not None:
                self._set_master_password(names, password)
            self._create_secret(ws, names, password, key_arn)
            created.append("secret")
        else:
            self._complete_rotation(names, secret, instance)
            password = self._password(names.secret)
        if instance is None:
            self._create_instance(ws, names, password, subnet_group, security_group, key_arn)
            created.append("instance")
        else:
            self._converge(instance, key_arn)
        instance = self._wait_ready(names)
        outputs = {
            "database_instance": names.rds_instance,
            "database_arn": instance["DBInstanceArn"],
            "database_host": instance["Endpoint"]["Address"],
            "database_port": instance["Endpoint"]["Port"],
            "database_name": DATABASE_NAME,
            "database_secret_arn": self._secret_arn(names),
        }
        return Ensured(outputs, tuple(created))

    def _secret_arn(self, names: WorkspaceNames) -> str:
        secret = self._secret(names)
        if secret is None:
            raise ProviderError("the database secret disappeared")
        return str(secret["ARN"])

    def _ensure_subnet_group(self, ws: WorkspaceSpec, names: WorkspaceNames, created: list[str]) -> dict[str, Any]:
        rds = self._client("rds")
        name = self._config.db_subnet_group or names.db_subnet_group
        found = absent(
            lambda: rds.describe_db_subnet_groups(DBSubnetGroupName=name)["DBSubnetGroups"],
            "DBSubnetGroupNotFoundFault",
        )
        if found:
            return dict(found[0])
        if self._config.db_subnet_group:
            raise ProviderError(f"DB subnet group {name} does not exist")
        if len(self._config.subnet_ids) < 2:
            raise ProviderError("set CANOPY_AWS_PRIVATE_SUBNET_IDS (2+ private subnets) for silo databases")
        group = rds.create_db_subnet_group(
            DBSubnetGroupName=name,
            DBSubnetGroupDescription=f"Canopy workspace {ws.id}: private subnets",
            SubnetIds=list(self._config.subnet_ids),
            Tags=tag_list(tags_of(ws)),
        )["DBSubnetGroup"]
        created.append("db_subnet_group")
        return dict(group)

    def _ensure_security_group(
        self, ws: WorkspaceSpec, names: WorkspaceNames, subnet_group: dict[str, Any], created: list[str]
    ) -> str:
        ec2 = self._client("ec2")
        vpc_id = subnet_group["VpcId"]
        existing = self._security_group(names, vpc_id)
        if existing:
            return existing
        group_id = str(
            ec2.create_security_group(
                GroupName=names.db_security_group,
                Description=f"Canopy workspace {ws.id}: PostgreSQL from inside the VPC",
                VpcId=vpc_id,
                TagSpecifications=[{"ResourceType": "security-group", "Tags": tag_list(tags_of(ws))}],
            )["GroupId"]
        )
        cidr = ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0]["CidrBlock"]
        ec2.authorize_security_group_ingress(
            GroupId=group_id,
            IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": RDS.port, "ToPort": RDS.port, "IpRanges": [{"CidrIp": cidr}]}
            ],
        )
        created.append("db_security_group")
        return group_id

    def _security_group(self, names: WorkspaceNames, vpc_id: str | None = None) -> str | None:
        filters = [{"Name": "group-name", "Values": [names.db_security_group]}]
        filters += [{"Name": "vpc-id", "Values": [vpc_id]}] if vpc_id else []
        groups = self._client("ec2").describe_security_groups(Filters=filters)["SecurityGroups"]
        return str(groups[0]["GroupId"]) if groups else None

    def _create_secret(self, ws: WorkspaceSpec, names: WorkspaceNames, password: str, key_arn: str) -> None:
        self._client("secretsmanager").create_secret(
            Name=names.secret,
            Description=f"Master credentials of Canopy workspace {ws.id}'s database",
            KmsKeyId=key_arn,
            SecretString=json.dumps({"username": RDS.master_username, "password": password}),
            Tags=tag_list(tags_of(ws)),
        )

    def _set_master_password(self, names: WorkspaceNames, password: str) -> None:
        self._client("rds").modify_db_instance(
            DBInstanceIdentifier=names.rds_instance, MasterUserPassword=password, ApplyImmediately=True
        )

    def _create_instance(
        self,
        ws: WorkspaceSpec,
        names: WorkspaceNames,
        password: str,
        subnet_group: dict[str, Any],
        security_group: str,
        key_arn: str,
    ) -> None:
        self._client("rds").create_db_instance(
            DBInstanceIdentifier=names.rds_instance,
            DBName=DATABASE_NAME,
            Engine=RDS.engine,
            EngineVersion=RDS.engine_version,
            DBInstanceClass=RDS.instance_class(ws.tier),
            AllocatedStorage=RDS.allocated_storage_gb,
            StorageType=RDS.storage_type,
            StorageEncrypted=RDS.storage_encrypted,
            KmsKeyId=key_arn,
            MasterUsername=RDS.master_username,
            MasterUserPassword=password,
            DBSubnetGroupName=subnet_group["DBSubnetGroupName"],
            VpcSecurityGroupIds=[security_group],
            PubliclyAccessible=RDS.publicly_accessible,
            DeletionProtection=RDS.deletion_protection,
            BackupRetentionPeriod=RDS.backup_retention_days,
            CopyTagsToSnapshot=RDS.copy_tags_to_snapshot,
            AutoMinorVersionUpgrade=RDS.auto_minor_version_upgrade,
            Port=RDS.port,
            Tags=tag_list(tags_of(ws)),
        )

    def _converge(self, instance: dict[str, Any], key_arn: str) -> None:
        """Restore deletion protection and backups if someone turned them off; refuse an unencrypted instance."""
        if not instance.get("StorageEncrypted") or instance.get("KmsKeyId") != key_arn:
            raise ProviderError("the workspace's database is not encrypted with the workspace key")
        if instance["DBInstanceStatus"] in FAILED_STATES:
            raise ProviderError(f"the workspace's database is {instance['DBInstanceStatus']}")
        drift: dict[str, Any] = {}
        if instance.get("DeletionProtection") != RDS.deletion_protection:
            drift["DeletionProtection"] = RDS.deletion_protection
        if instance.get("BackupRetentionPeriod") != RDS.backup_retention_days:
            drift["BackupRetentionPeriod"] = RDS.backup_retention_days
        if drift:
            self._client("rds").modify_db_instance(
                DBInstanceIdentifier=instance["DBInstanceIdentifier"], ApplyImmediately=True, **drift
            )

    def _wait_ready(self, names: WorkspaceNames, identifier: str | None = None) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        name = identifier or names.rds_instance

        def ready() -> bool:
            instance = self._instance_named(name)
            if instance is None or instance["DBInstanceStatus"] in FAILED_STATES:
                status = instance["DBInstanceStatus"] if instance else "missing"
                raise ProviderError(f"the workspace's database is {status}")
            seen.update(instance)
            return instance["DBInstanceStatus"] in READY_STATES and "Endpoint" in instance

        self._config.waits.until(f"database {name}", ready)
        return seen

    # -- credentials ----------------------------------------------------------------------------

    def rotate_password(self, ws: WorkspaceSpec) -> None:
        """Give the master user a new password: staged ``AWSPENDING``, set on the instance, then promoted."""
        names = self._config.names(ws)
        secret = self._secret(names)
        instance = self._instance(names)
        if secret is None or instance is None:
            raise ProviderError("the workspace's database is not provisioned")
        self._client("secretsmanager").put_secret_value(
            SecretId=secret["ARN"],
            SecretString=json.dumps({"username": RDS.master_username, "password": new_password()}),
            VersionStages=["AWSPENDING"],
        )
        self._complete_rotation(names, self._secret(names) or secret, instance)

    def _complete_rotation(
        self, names: WorkspaceNames, secret: dict[str, Any], instance: dict[str, Any] | None
    ) -> None:
        """Finish a rotation whose pending version is not current yet (idempotent)."""
        stages: dict[str, list[str]] = secret.get("VersionIdsToStages", {})
        pending = [v for v, s in stages.items() if "AWSPENDING" in s and "AWSCURRENT" not in s]
        if not pending:
            return
        current = [v for v, s in stages.items() if "AWSCURRENT" in s]
        if instance is not None:
            self._set_master_password(names, self._password(names.secret, "AWSPENDING"))
        sm = self._client("secretsmanager")
        sm.update_secret_version_stage(
            SecretId=names.secret, VersionStage="AWSCURRENT", MoveToVersionId=pending[0], RemoveFromVersionId=current[0]
        )
        sm.update_secret_version_stage(SecretId=names.secret, VersionStage="AWSPENDING", RemoveFromVersionId=pending[0])

    # -- snapshots and restores -------------------------------------------------------------------

    def snapshot(self, ws: WorkspaceSpec, identifier: str) -> dict[str, Any]:
        """The manual snapshot ``identifier`` of the instance (taken unless it exists), once available, tagged
        like the workspace and encrypted with its key (a snapshot of the instance is under the instance's key)."""
        names = self._config.names(ws)
        key_arn = self._kms.key_arn(ws)
        if self._snapshot(identifier) is None:
            self._client("rds").create_db_snapshot(
                DBSnapshotIdentifier=identifier, DBInstanceIdentifier=names.rds_instance, Tags=tag_list(tags_of(ws))
            )
        snapshot = self._wait_snapshot(identifier)
        if not snapshot.get("Encrypted") or snapshot.get("KmsKeyId") != key_arn:
            raise ProviderError(f"snapshot {identifier} is not encrypted with the workspace key")
        return snapshot

    def _snapshot(self, identifier: str) -> dict[str, Any] | None:
        rds = self._client("rds")
        found = absent(
            lambda: rds.describe_db_snapshots(DBSnapshotIdentifier=identifier)["DBSnapshots"], "DBSnapshotNotFound"
        )
        return dict(found[0]) if found else None

    def _wait_snapshot(self, identifier: str) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        def available() -> bool:
            snapshot = self._snapshot(identifier)
            if snapshot is None or snapshot["Status"] in SNAPSHOT_FAILED_STATES:
                raise ProviderError(f"snapshot {identifier} is {snapshot['Status'] if snapshot else 'missing'}")
            seen.update(snapshot)
            return bool(snapshot["Status"] == "available")

        self._config.waits.until(f"snapshot {identifier}", available)
        return seen

    def describe_snapshot(self, identifier: str) -> dict[str, Any] | None:
        """The snapshot ``identifier`` as RDS describes it, or None."""
        return self._snapshot(identifier)

    def delete_snapshot(self, identifier: str) -> None:
        """Delete the snapshot ``identifier`` (idempotent)."""
        with tolerating("DBSnapshotNotFound", "DBSnapshotNotFoundFault"):
            self._client("rds").delete_db_snapshot(DBSnapshotIdentifier=identifier)

    def restore_snapshot(self, ws: WorkspaceSpec, identifier: str) -> None:
        """Replace ``ws``'s instance by one restored from snapshot ``identifier`` (of this or another silo).

        RDS restores a snapshot under the snapshot's own key: one under another key is first copied under ``ws``'s
        key as ``<name>-from-<snapshot>`` (tagged for ``ws``; deleted once the restore is done).
        """
        names = self._config.names(ws)
        key_arn = self._kms.key_arn(ws)
        snapshot = self._snapshot(identifier)
        if snapshot is None:
            raise ProviderError(f"snapshot {identifier} does not exist")
        copy = f"{names.rds_instance}-from-{identifier}"[:255]
        source = identifier
        if snapshot.get("KmsKeyId") != key_arn:
            if self._snapshot(copy) is None:
                self._client("rds").copy_db_snapshot(
                    SourceDBSnapshotIdentifier=identifier,
                    TargetDBSnapshotIdentifier=copy,
                    KmsKeyId=key_arn,
                    Tags=tag_list(tags_of(ws)),
                )
            self._wait_snapshot(copy)
            source = copy

        def create(staging: str, settings: dict[str, Any]) -> None:
            self._client("rds").restore_db_instance_from_db_snapshot(
                DBInstanceIdentifier=staging, DBSnapshotIdentifier=source, **settings
            )

        self._replace(ws, f"snapshot:{identifier}", create)
        if source == copy:
            self.delete_snapshot(copy)

    def restore_window(self, ws: WorkspaceSpec) -> tuple[dt.datetime, dt.datetime]:
        """The earliest and latest times ``ws``'s instance can be restored to.

        The earliest is RDS's ``RestoreWindow`` of the instance's automated backups where RDS reports one, else the
        retention period back from now (not before the instance was created).
        """
        names = self._config.names(ws)
        instance = self._instance(names)
        if instance is None or not instance.get("LatestRestorableTime"):
            raise ProviderError("the workspace's database has no point-in-time recovery")
        latest: dt.datetime = instance["LatestRestorableTime"]
        backups = absent(
            lambda: self._client("rds").describe_db_instance_automated_backups(DbiResourceId=instance["DbiResourceId"])[
                "DBInstanceAutomatedBackups"
            ],
            "DBInstanceAutomatedBackupNotFound",
        )
        windows = [
            b["RestoreWindow"]["EarliestTime"] for b in backups or [] if b.get("RestoreWindow", {}).get("EarliestTime")
        ]
        if windows:
            return min(windows), latest
        retention = dt.timedelta(days=int(instance.get("BackupRetentionPeriod") or 0))
        return max(instance["InstanceCreateTime"], dt.datetime.now(dt.UTC) - retention), latest

    def restore_to_point_in_time(self, ws: WorkspaceSpec, source: WorkspaceSpec, when: dt.datetime) -> None:
        """Replace ``ws``'s instance by ``source``'s (the same silo, or another under the same key) as it was at
        ``when``; ProviderError when ``when`` is outside the source's restore window.

        ``RestoreDBInstanceToPointInTime`` keeps the source's key (it takes none), so a source under another key
        is refused: restore a backup into that silo instead.
        """
        source_names = self._config.names(source)
        source_instance = self._instance(source_names)
        if source_instance is None:
            raise ProviderError("the source workspace's database does not exist")
        if source_instance.get("KmsKeyId") != self._kms.key_arn(ws):
            raise ProviderError("point-in-time recovery keeps the source's key: restore into the same silo")
        marker = f"time:{when.astimezone(dt.UTC).isoformat(timespec='seconds')}"

        def create(staging: str, settings: dict[str, Any]) -> None:
            earliest, latest = self.restore_window(source)
            if not earliest <= when <= latest:
                raise ProviderError(
                    f"{when.isoformat(timespec='seconds')} is outside the restore window "
                    f"{earliest.isoformat(timespec='seconds')} .. {latest.isoformat(timespec='seconds')}"
                )
            self._client("rds").restore_db_instance_to_point_in_time(
                SourceDBInstanceIdentifier=source_names.rds_instance,
                TargetDBInstanceIdentifier=staging,
                RestoreTime=when,
                **settings,
            )

        self._replace(ws, marker, create)

    def _replace(self, ws: WorkspaceSpec, marker: str, create: Callable[[str, dict[str, Any]], None]) -> None:
        """Make ``ws``'s instance one that ``create(staging identifier, settings)`` makes (see the module)."""
        names = self._config.names(ws)
        rds = self._client("rds")
        staging = f"{names.rds_instance}{STAGING_SUFFIX}"
        if self._secret(names) is None:
            raise ProviderError("the workspace's database is not provisioned")
        current = self._instance(names)
        if current is None or _restore_marker(current) != marker:
            staged = self._instance_named(staging)
            if staged is not None and _restore_marker(staged) != marker:
                self._delete(staging, staged)
                staged = None
            if staged is None:
                create(staging, self._restore_settings(ws, names, marker))
            self._wait_ready(names, staging)
            if current is not None:
                self._delete(names.rds_instance, current)
            rds.modify_db_instance(
                DBInstanceIdentifier=staging, NewDBInstanceIdentifier=names.rds_instance, ApplyImmediately=True
            )
        instance = self._wait_ready(names)
        self._set_master_password(names, self._password(names.secret))
        self._converge(instance, self._kms.key_arn(ws))
        rds.add_tags_to_resource(ResourceName=instance["DBInstanceArn"], Tags=tag_list(tags_of(ws)))
        rds.remove_tags_from_resource(ResourceName=instance["DBInstanceArn"], TagKeys=[TAG_RESTORE])

    def _restore_settings(self, ws: WorkspaceSpec, names: WorkspaceNames, marker: str) -> dict[str, Any]:
        """What a restored instance gets from ``ws`` (the rest comes from the snapshot or the source instance)."""
        group = self._config.db_subnet_group or names.db_subnet_group
        rds = self._client("rds")
        if absent(lambda: rds.describe_db_subnet_groups(DBSubnetGroupName=group), "DBSubnetGroupNotFoundFault") is None:
            raise ProviderError(f"DB subnet group {group} does not exist")
        security_group = self._security_group(names)
        if security_group is None:
            raise ProviderError("the workspace's database security group does not exist")
        return {
            "DBInstanceClass": RDS.instance_class(ws.tier),
            "DBSubnetGroupName": group,
            "VpcSecurityGroupIds": [security_group],
            "PubliclyAccessible": RDS.publicly_accessible,
            "DeletionProtection": RDS.deletion_protection,
            "BackupRetentionPeriod": RDS.backup_retention_days,
            "CopyTagsToSnapshot": RDS.copy_tags_to_snapshot,
            "AutoMinorVersionUpgrade": RDS.auto_minor_version_upgrade,
            "StorageType": RDS.storage_type,
            "Port": RDS.port,
            "Tags": tag_list({**tags_of(ws), TAG_RESTORE: marker}),
        }

    def _delete(self, identifier: str, instance: dict[str, Any]) -> None:
        """Delete an instance that a restore replaces (no final snapshot: its content is being replaced on
        purpose), and wait until it is gone."""
        rds = self._client("rds")
        if instance["DBInstanceStatus"] != "deleting":
            if instance.get("DeletionProtection"):
                rds.modify_db_instance(DBInstanceIdentifier=identifier, DeletionProtection=False, ApplyImmediately=True)
            with tolerating("DBInstanceNotFound"):
                rds.delete_db_instance(DBInstanceIdentifier=identifier, SkipFinalSnapshot=True)
        self._config.waits.until(f"deletion of {identifier}", lambda: self._instance_named(identifier) is None)

    @contextlib.contextmanager
    def scratch_instance(
        self, scratch: WorkspaceSpec, workspace_id: uuid.UUID, identifier: str, key_arn: str
    ) -> Iterator[ScratchDatabase]:
        """Snapshot ``identifier`` of silo ``workspace_id`` restored into the restore drill's scratch instance
        (:func:`~infra.conventions.drill_instance`): in the silo's subnet group and behind its security group when
        they are still there (else the VPC's default group), never public, no deletion protection, no automated
        backups, tagged as ``scratch``'s with ``canopy:drill-of``; yielded once available with what is wrong with it
        (not encrypted under ``key_arn``). Deleted on exit with no final snapshot (it only ever
        held a copy of a backup), and waited for until gone."""
        names = workspace_names(self._config.env, workspace_id)
        identifier_of_scratch = drill_instance(self._config.env, workspace_id, scratch.id)
        group = self._config.db_subnet_group or names.db_subnet_group
        rds = self._client("rds")
        if absent(lambda: rds.describe_db_subnet_groups(DBSubnetGroupName=group), "DBSubnetGroupNotFoundFault") is None:
            raise ProviderError(f"DB subnet group {group} does not exist")
        security_group = self._security_group(names)
        tags = {**tags_of(scratch), TAG_DRILL_OF: str(workspace_id)}
        if self._snapshot(identifier) is None:
            raise ProviderError(f"snapshot {identifier} does not exist")
        try:
            rds.restore_db_instance_from_db_snapshot(
                DBInstanceIdentifier=identifier_of_scratch,
                DBSnapshotIdentifier=identifier,
                DBInstanceClass=RDS.instance_class(scratch.tier),
                DBSubnetGroupName=group,
                PubliclyAccessible=False,
                DeletionProtection=False,
                BackupRetentionPeriod=0,
                StorageType=RDS.storage_type,
                Port=RDS.port,
                Tags=tag_list(tags),
                **({"VpcSecurityGroupIds": [security_group]} if security_group else {}),
            )
            instance = self._wait_available(identifier_of_scratch)
            problems = []
            if not instance.get("StorageEncrypted") or instance.get("KmsKeyId") != key_arn:
                problems.append(f"scratch instance {identifier_of_scratch} is not encrypted with the workspace key")
            yield ScratchDatabase(identifier_of_scratch, None, problems)
        finally:
            scratch_instance = self._instance_named(identifier_of_scratch)
            if scratch_instance is not None:
                self._delete(identifier_of_scratch, scratch_instance)

    def _wait_available(self, identifier: str) -> dict[str, Any]:
        """Instance ``identifier`` once available (ProviderError if it fails or disappears)."""
        seen: dict[str, Any] = {}

        def available() -> bool:
            instance = self._instance_named(identifier)
            if instance is None or instance["DBInstanceStatus"] in FAILED_STATES:
                status = instance["DBInstanceStatus"] if instance else "missing"
                raise ProviderError(f"instance {identifier} is {status}")
            seen.update(instance)
            return bool(instance["DBInstanceStatus"] == "available")

        self._config.waits.until(f"instance {identifier}", available)
        return seen

    # -- teardown -------------------------------------------------------------------------------

    def final_snapshot(self, ws: WorkspaceSpec) -> str:
        """Identifier of the snapshot taken when the instance is deleted."""
        return f"{self._config.names(ws).rds_instance}-final"

    def teardown(self, ws: WorkspaceSpec) -> None:
        names = self._config.names(ws)
        rds = self._client("rds")
        instance = self._instance(names)
        if instance is not None and instance["DBInstanceStatus"] != "deleting":
            if instance.get("DeletionProtection"):
                rds.modify_db_instance(
                    DBInstanceIdentifier=names.rds_instance, DeletionProtection=False, ApplyImmediately=True
                )
            rds.delete_db_instance(
                DBInstanceIdentifier=names.rds_instance,
                SkipFinalSnapshot=False,
                FinalDBSnapshotIdentifier=self.final_snapshot(ws),
                DeleteAutomatedBackups=True,
            )
        if instance is not None:
            self._config.waits.until(f"deletion of {names.rds_instance}", lambda: self._instance(names) is None)
        group_id = self._security_group(names)
        if group_id:
            with tolerating("InvalidGroup.NotFound"):
                self._client("ec2").delete_security_group(GroupId=group_id)
        if not self._config.db_subnet_group:
            with tolerating("DBSubnetGroupNotFoundFault"):
                rds.delete_db_subnet_group(DBSubnetGroupName=names.db_subnet_group)
        if self._secret(names) is not None:
            self._client("secretsmanager").delete_secret(
                SecretId=names.secret, RecoveryWindowInDays=SECRET_DELETION_DAYS
            )

    def leftovers(self, ws: WorkspaceSpec) -> list[str]:
        names = self._config.names(ws)
        found = [f"rds instance {names.rds_instance}"] if self._instance(names) else []
        found += [f"secret {names.secret}"] if self._secret(names) else []
        found += [f"security group {names.db_security_group}"] if self._security_group(names) else []
        if not self._config.db_subnet_group:
            rds = self._client("rds")
            group = absent(
                lambda: rds.describe_db_subnet_groups(DBSubnetGroupName=names.db_subnet_group),
                "DBSubnetGroupNotFoundFault",
            )
            found += [f"db subnet group {names.db_subnet_group}"] if group else []
        return found

    def find_drift(self, watched: Sequence[Watched], cursors: Cursors) -> list[Drift]:
        """One listing of the region's RDS instances: a silo whose instance is gone, failing, unencrypted, public
        or without deletion protection."""
        pages = self._client("rds").get_paginator("describe_db_instances").paginate()
        instances = {i["DBInstanceIdentifier"]: i for page in pages for i in page["DBInstances"]}
        found = []
        for item in watched:
            name = self._config.names(item.spec).rds_instance
            reason = instance_drift(instances.get(name))
            if reason:
                found.append(Drift(item.spec.id, "rds", f"instance {name} {reason}"))
        return found


def _restore_marker(instance: dict[str, Any]) -> str | None:
    """The ``canopy:restore`` tag of an instance (what a restore in progress put in it), or None."""
    return tags_from_list(instance.get("TagList") or []).get(TAG_RESTORE)
