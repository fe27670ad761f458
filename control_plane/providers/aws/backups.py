"""Backups of aws workspaces (BackupProviders), into the backup bucket of :mod:`.backup_store`.

- Professional (pooled): ``database.dump``, a ``pg_dump`` of the workspace's database on its cell's PostgreSQL as
  its own role, and ``files.tar``, every object under its prefix of the cell's bucket; both under the cell's key.
- Enterprise (silo): an RDS snapshot of its instance (under the instance's key, the tenant key) and ``files.tar`` of
  its bucket under the tenant key; point-in-time recovery of its instance (:meth:`SiloBackups.restore_to_time`).

Objects are ``backups/<short id>/<backup id>/<part>``. A silo's key outlives the silo while it has backups
(:class:`~control_plane.providers.aws.kms.SiloKms`); discarding the last backup of a deleted silo deletes its final
snapshot and schedules its key's deletion (:meth:`SiloBackups.discard`).
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any

from control_plane.providers.aws.backup_store import BackupBucket, upload
from control_plane.providers.aws.common import Aws, SiloConfig, tolerating
from control_plane.providers.aws.kms import DELETION_WINDOW_DAYS, kept_for_backups
from control_plane.providers.aws.postgres import PooledDatabase
from control_plane.providers.aws.rds import SiloDatabase
from control_plane.providers.base import BackupPart, ProviderError, ScratchDatabase, WorkspaceSpec
from control_plane.providers.data_copy import (
    CHUNK,
    POST_COUNT,
    FileMember,
    dump_database,
    pack_files,
    restore_database,
    unpack_files,
)
from control_plane.providers.scratch import scratch_database
from infra.conventions import TAG_WORKSPACE, backup_object_key, backup_prefix, backup_snapshot, workspace_names

DATABASE_PART = "database"
FILES_PART = "files"
OBJECT_NAMES = {DATABASE_PART: "database.dump", FILES_PART: "files.tar"}


def _outputs(outputs: Mapping[str, Any], *keys: str) -> list[str]:
    missing = [key for key in keys if not outputs.get(key)]
    if missing:
        raise ProviderError(f"the workspace has no {', '.join(missing)} yet")
    return [str(outputs[key]) for key in keys]


# -- the files of a prefix as a tar, and back -------------------------------------------------------


def _object_chunks(s3: Any, bucket: str, key: str) -> Iterator[bytes]:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    try:
        yield from body.iter_chunks(CHUNK)
    finally:
        body.close()


def prefix_members(s3: Any, bucket: str, prefix: str) -> list[FileMember]:
    """Every current object under ``prefix`` as a member named by its key without the prefix (sorted)."""
    members = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if item["Key"].endswith("/"):
                continue  # a "folder" marker holds nothing
            read = functools.partial(_object_chunks, s3, bucket, item["Key"])
            members.append(FileMember(item["Key"][len(prefix) :], int(item["Size"]), read))
    return sorted(members, key=lambda m: m.name)


def unpack_to_prefix(s3: Any, bucket: str, prefix: str, kms_key_arn: str, chunks: Iterator[bytes]) -> int:
    """Make the objects under ``prefix`` exactly the tar's members: each written (under ``kms_key_arn``), then
    every other object under the prefix deleted (a failure midway leaves the old objects beside the new ones; a
    re-run converges). Returns the number of members."""
    written = set()
    for member in unpack_files(chunks):
        key = f"{prefix}{member.name}"
        upload(s3, bucket, key, kms_key_arn, member.chunks)
        written.add(key)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        doomed = [{"Key": item["Key"]} for item in page.get("Contents", []) if item["Key"] not in written]
        if doomed:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed, "Quiet": True})
    return len(written)


class _S3Parts:
    """What both tiers share: their files part, database dumps as objects, verify and discard of objects."""

    def __init__(self, aws: Aws, store: BackupBucket) -> None:
        self._aws = aws
        self._store = store

    def bucket(self, region: str) -> str:
        """The region's backup bucket, ensured."""
        return self._store.bucket(region)

    def _write(
        self,
        ws: WorkspaceSpec,
        outputs: Mapping[str, Any],
        backup_id: uuid.UUID,
        name: str,
        chunks: Iterator[bytes],
        count: int | None,
    ) -> BackupPart:
        region, key_arn = _outputs(outputs, "region", "kms_key_arn")
        key = backup_object_key(ws.id, backup_id, OBJECT_NAMES[name])
        return self._store.write(name, region, key, key_arn, chunks, count)

    def back_up_files(self, ws: WorkspaceSpec, outputs: Mapping[str, Any], backup_id: uuid.UUID) -> BackupPart:
        bucket, region = _outputs(outputs, "bucket", "region")
        s3 = self._aws.client("s3", region)
        members = prefix_members(s3, bucket, str(outputs.get("bucket_prefix") or ""))
        return self._write(ws, outputs, backup_id, FILES_PART, pack_files(members), len(members))

    def restore_files(self, ws: WorkspaceSpec, outputs: Mapping[str, Any], part: BackupPart) -> None:
        bucket, region, key_arn = _outputs(outputs, "bucket", "region", "kms_key_arn")
        prefix = str(outputs.get("bucket_prefix") or "")
        unpack_to_prefix(self._aws.client("s3", region), bucket, prefix, key_arn, self._store.read(part))

    def verify(self, part: BackupPart) -> str | None:
        return self._store.check(part)

    def discard(self, part: BackupPart) -> None:
        self._store.delete(part)


class PooledBackups(_S3Parts):
    """A professional workspace: its database dumped as its own role, its prefix packed; both under the cell key."""

    def __init__(self, aws: Aws, store: BackupBucket, database: PooledDatabase) -> None:
        super().__init__(aws, store)
        self._database = database

    def back_up_database(self, ws: WorkspaceSpec, outputs: Mapping[str, Any], backup_id: uuid.UUID) -> BackupPart:
        with dump_database(self._database.connection_url(ws), POST_COUNT) as dump:
            return self._write(ws, outputs, backup_id, DATABASE_PART, dump.chunks, dump.count)

    def restore_database(self, ws: WorkspaceSpec, outputs: Mapping[str, Any], part: BackupPart) -> None:
        restore_database(self._database.connection_url(ws), self._store.read(part))

    def scratch_restore(self, scratch: WorkspaceSpec, part: BackupPart) -> AbstractContextManager[ScratchDatabase]:
        """A scratch database and role on the cell's PostgreSQL (with the password this provider set was built
        with), the dump restored into it; dropped on exit."""
        return scratch_database(self._database, self.restore_database, scratch, part)


class SiloBackups(_S3Parts):
    """An enterprise silo: a snapshot of its instance and its bucket packed under the tenant key."""

    def __init__(self, aws: Aws, store: BackupBucket, config: SiloConfig, database: SiloDatabase) -> None:
        super().__init__(aws, store)
        self._config = config
        self._database = database

    def back_up_database(self, ws: WorkspaceSpec, outputs: Mapping[str, Any], backup_id: uuid.UUID) -> BackupPart:
        identifier = backup_snapshot(self._config.env, ws.id, backup_id)
        snapshot = self._database.snapshot(ws, identifier)
        location = {
            "rds_snapshot": identifier,
            "region": self._config.region,
            "kms_key_arn": snapshot["KmsKeyId"],
            "workspace_id": str(ws.id),
        }
        return BackupPart(DATABASE_PART, location, int(snapshot["AllocatedStorage"]) << 30, None)

    def restore_database(self, ws: WorkspaceSpec, outputs: Mapping[str, Any], part: BackupPart) -> None:
        self._database.restore_snapshot(ws, str(part.location["rds_snapshot"]))

    def scratch_restore(self, scratch: WorkspaceSpec, part: BackupPart) -> AbstractContextManager[ScratchDatabase]:
        """The snapshot restored into a scratch instance (:meth:`SiloDatabase.scratch_instance`): what RDS reports
        of it is checked (available, encrypted under the backup's key); no data is read (the control plane has no
        credential of a restored instance: its master password is the backed-up silo's)."""
        return self._database.scratch_instance(
            scratch,
            uuid.UUID(str(part.location["workspace_id"])),
            str(part.location["rds_snapshot"]),
            str(part.location["kms_key_arn"]),
        )

    def restore_window(self, ws: WorkspaceSpec) -> tuple[dt.datetime, dt.datetime]:
        """The earliest and latest times the silo's database can be restored to."""
        return self._database.restore_window(ws)

    def restore_to_time(self, ws: WorkspaceSpec, source: WorkspaceSpec, when: dt.datetime) -> None:
        """Point-in-time recovery: ``ws``'s database becomes ``source``'s as it was at ``when`` (``source`` is ``ws``
        or a silo under the same key; ``when`` within the source's restore window). Files are not versioned by
        time: restore a backup's files part alongside."""
        self._database.restore_to_point_in_time(ws, source, when)

    def verify(self, part: BackupPart) -> str | None:
        if "rds_snapshot" not in part.location:
            return super().verify(part)
        identifier = str(part.location["rds_snapshot"])
        snapshot = self._database.describe_snapshot(identifier)
        if snapshot is None:
            return f"snapshot {identifier} is missing"
        if snapshot["Status"] != "available":
            return f"snapshot {identifier} is {snapshot['Status']}"
        if not snapshot.get("Encrypted") or snapshot.get("KmsKeyId") != part.location["kms_key_arn"]:
            return f"snapshot {identifier} is not encrypted with the workspace's key"
        return None

    def discard(self, part: BackupPart) -> None:
        """Remove the part; when it was the last backup of a deleted silo (its key kept for backups), also delete
        the silo's final snapshot and schedule its key's deletion."""
        if "rds_snapshot" in part.location:
            self._database.delete_snapshot(str(part.location["rds_snapshot"]))
        else:
            super().discard(part)
        self.release_key(str(part.location["kms_key_arn"]))

    def release_key(self, key_arn: str) -> None:
        """Schedule the deletion of a key kept for backups once no backup of its workspace is left (idempotent)."""
        kms = self._aws.client("kms", self._config.region)
        key = kms.describe_key(KeyId=key_arn)["KeyMetadata"]
        if key["KeyState"] != "Enabled" or not kept_for_backups(kms, key_arn):
            return
        tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key_arn)["Tags"]}
        workspace_id = uuid.UUID(tags[TAG_WORKSPACE])
        if self.backups_left(workspace_id):
            return
        self._database.delete_snapshot(f"{workspace_names(self._config.env, workspace_id).rds_instance}-final")
        with tolerating("KMSInvalidStateException"):
            kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=DELETION_WINDOW_DAYS)

    def backups_left(self, workspace_id: uuid.UUID) -> bool:
        """Whether a backup of the silo is left (see :func:`silo_backups_left`)."""
        return silo_backups_left(self._aws, self._store, self._config, workspace_id)


def silo_backups_left(aws: Aws, store: BackupBucket, config: SiloConfig, workspace_id: uuid.UUID) -> bool:
    """Whether a backup of the silo is left: a backup snapshot of its instance or an object of its backups."""
    if store.holds(config.region, backup_prefix(workspace_id)):
        return True
    instance = workspace_names(config.env, workspace_id).rds_instance
    pages = aws.client("rds", config.region).get_paginator("describe_db_snapshots")
    return any(
        s["DBSnapshotIdentifier"].startswith(f"{instance}-backup-")
        for page in pages.paginate(DBInstanceIdentifier=instance, SnapshotType="manual")
        for s in page["DBSnapshots"]
    )
