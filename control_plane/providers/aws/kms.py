"""The tenant key of an enterprise silo."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from control_plane.providers.aws.common import Aws, SiloConfig, absent, tagged_arns, tags_of, tolerating
from control_plane.providers.base import Ensured, ProviderError, WorkspaceSpec
from infra.conventions import KEPT_FOR_BACKUPS, KMS, TAG_KEPT_FOR, kms_tag_list

DELETION_WINDOW_DAYS = 7
GONE_STATES = frozenset({"PendingDeletion", "PendingReplicaDeletion"})
BackupsLeft = Callable[[uuid.UUID], bool]
"""Whether a workspace still has backups (encrypted with its key)."""


def kept_for_backups(kms: Any, key_id: str) -> bool:
    """Whether the key is a deleted silo's, left for its backups (tagged ``canopy:kept-for`` = ``backups``)."""
    tags = kms.list_resource_tags(KeyId=key_id)["Tags"]
    return any(t["TagKey"] == TAG_KEPT_FOR and t["TagValue"] == KEPT_FOR_BACKUPS for t in tags)


class SiloKms:
    """A customer managed key per silo, rotated yearly, tagged, named by ``alias/canopy/<env>/<short id>``.

    A key created by a run that died before creating the alias is found again by its tags and adopted.
    Teardown removes the alias first, then schedules the key's deletion (7 days), unless ``backups_left`` says the
    workspace still has backups: then the key stays enabled, tagged ``canopy:kept-for`` = ``backups``, and is no
    longer the workspace's (no leftover; the backups' ``discard`` of the last one schedules its deletion).
    """

    def __init__(self, aws: Aws, config: SiloConfig, backups_left: BackupsLeft | None = None) -> None:
        self._aws = aws
        self._config = config
        self._backups_left = backups_left

    def _kms(self) -> Any:
        return self._aws.client("kms", self._config.region)

    def _by_alias(self, ws: WorkspaceSpec) -> dict[str, Any] | None:
        alias = self._config.names(ws).kms_alias
        return absent(lambda: self._kms().describe_key(KeyId=alias)["KeyMetadata"], "NotFoundException")

    def _tagged_keys(self, ws: WorkspaceSpec) -> list[dict[str, Any]]:
        """The workspace's keys that are neither scheduled for deletion nor kept for backups, oldest first."""
        arns = tagged_arns(self._aws, self._config.region, ws.id, "kms")
        keys = [self._kms().describe_key(KeyId=arn)["KeyMetadata"] for arn in arns]
        live = (k for k in keys if k["KeyState"] not in GONE_STATES and not kept_for_backups(self._kms(), k["KeyId"]))
        return sorted(live, key=lambda k: k["CreationDate"])

    def key_arn(self, ws: WorkspaceSpec) -> str:
        """ARN of the tenant key; ProviderError before it was ensured."""
        key = self._by_alias(ws)
        if key is None:
            raise ProviderError("the workspace's KMS key does not exist yet")
        return str(key["Arn"])

    def ensure(self, ws: WorkspaceSpec) -> Ensured:
        created: list[str] = []
        key = self._by_alias(ws)
        if key is None:
            adoptable = self._tagged_keys(ws)
            key = adoptable[0] if adoptable else self._create(ws)
            created += [] if adoptable else ["kms_key"]
            self._kms().create_alias(AliasName=self._config.names(ws).kms_alias, TargetKeyId=key["KeyId"])
            created.append("kms_alias")
        if key["KeyState"] != "Enabled":
            raise ProviderError(f"the workspace's KMS key is {key['KeyState']}")
        if not self._kms().get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"]:
            self._kms().enable_key_rotation(KeyId=key["KeyId"])
        return Ensured({"kms_key_arn": key["Arn"], "kms_alias": self._config.names(ws).kms_alias}, tuple(created))

    def _create(self, ws: WorkspaceSpec) -> dict[str, Any]:
        key: dict[str, Any] = self._kms().create_key(
            Description=f"Canopy workspace {ws.id}",
            KeyUsage=KMS.key_usage,
            KeySpec=KMS.key_spec,
            Tags=kms_tag_list(tags_of(ws)),
        )["KeyMetadata"]
        return key

    def teardown(self, ws: WorkspaceSpec) -> None:
        with tolerating("NotFoundException"):
            self._kms().delete_alias(AliasName=self._config.names(ws).kms_alias)
        keep = self._backups_left is not None and self._backups_left(ws.id)
        for key in self._tagged_keys(ws):
            if keep:
                self._kms().tag_resource(
                    KeyId=key["KeyId"], Tags=[{"TagKey": TAG_KEPT_FOR, "TagValue": KEPT_FOR_BACKUPS}]
                )
            else:
                self._kms().schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=DELETION_WINDOW_DAYS)

    def leftovers(self, ws: WorkspaceSpec) -> list[str]:
        found = [f"kms alias {self._config.names(ws).kms_alias}"] if self._by_alias(ws) else []
        return found + [f"kms key {key['Arn']}" for key in self._tagged_keys(ws)]
