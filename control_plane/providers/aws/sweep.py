"""The leak sweep: what still exists in AWS for a workspace, found by tag, per service and by name.

- Resource Groups Tagging API (``canopy:workspace`` = id): S3 buckets, RDS instances and subnet
  groups, KMS keys, Secrets Manager secrets, EC2 security groups, ACM certificates. KMS keys pending deletion and
  secrets scheduled for deletion are on their way out and not reported, nor are keys kept for backups (a deleted
  silo's key while its backups last); RDS snapshots are never reported: the final snapshot of a silo database and
  backup snapshots are kept on purpose.
- EKS (the tagging API misses it): clusters listed and described, reported with all their nodegroups
  when tagged for the workspace.
- IAM (missed too): roles and policies under ``/canopy/`` whose name holds the workspace's short id,
  confirmed by their tags, and OIDC providers (a silo cluster's) tagged for the workspace.
- Route53 (records carry no tags): the ``(zone id, name)`` pairs the caller passes, i.e. the
  ``dns_zone_id`` / ``dns_name`` the DNS step recorded in the workspace outputs (and a silo certificate's validation
  record, ``certificate_zone_id`` / ``certificate_validation_name``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from control_plane.providers.aws.common import Aws, absent, tagged_arns
from control_plane.providers.aws.eks import oidc_provider_owner
from control_plane.providers.aws.kms import GONE_STATES, kept_for_backups
from control_plane.providers.aws.route53 import find_record
from infra.conventions import IAM_PATH, TAG_WORKSPACE, short_id, tags_from_list


class LeakSweep:
    """Leftovers of a workspace in one region (plus the global IAM and Route53)."""

    def __init__(self, aws: Aws, region: str) -> None:
        self._aws = aws
        self._region = region

    def _client(self, service: str) -> Any:
        return self._aws.client(service, self._region)

    def leftovers_for(self, workspace_id: uuid.UUID, records: Iterable[tuple[str, str]] = ()) -> list[str]:
        """Everything still present for ``workspace_id``; ``records`` are its ``(zone id, name)`` DNS records."""
        return [
            *self._tagged(workspace_id),
            *self._eks(workspace_id),
            *self._iam(workspace_id),
            *self._records(records),
        ]

    def _tagged(self, workspace_id: uuid.UUID) -> list[str]:
        return [arn for arn in tagged_arns(self._aws, self._region, workspace_id) if self._alive(arn)]

    def _alive(self, arn: str) -> bool:
        service, resource = arn.split(":")[2], arn.split(":", 5)[5]
        if service == "rds" and resource.startswith(("snapshot:", "cluster-snapshot:")):
            return False
        if service == "kms":
            key = absent(lambda: self._client("kms").describe_key(KeyId=arn)["KeyMetadata"], "NotFoundException")
            return (
                key is not None
                and key["KeyState"] not in GONE_STATES
                and not kept_for_backups(self._client("kms"), arn)
            )
        if service == "secretsmanager":
            sm = self._client("secretsmanager")
            secret = absent(lambda: sm.describe_secret(SecretId=arn), "ResourceNotFoundException")
            return secret is not None and not secret.get("DeletedDate")
        return True

    def _eks(self, workspace_id: uuid.UUID) -> list[str]:
        eks = self._client("eks")
        found = []
        for page in eks.get_paginator("list_clusters").paginate():
            for name in page["clusters"]:
                tags = self._cluster_tags(name)
                if tags is not None and tags.get(TAG_WORKSPACE) == str(workspace_id):
                    found += [f"eks cluster {name}", *self._nodegroups(name)]
        return found

    def _cluster_tags(self, name: str) -> dict[str, str] | None:
        eks = self._client("eks")
        cluster = absent(lambda: eks.describe_cluster(name=name)["cluster"], "ResourceNotFoundException")
        return None if cluster is None else dict(cluster.get("tags") or {})

    def _nodegroups(self, cluster: str) -> list[str]:
        eks = self._client("eks")
        pages = eks.get_paginator("list_nodegroups").paginate(clusterName=cluster)
        return [f"eks nodegroup {cluster}/{name}" for page in pages for name in page["nodegroups"]]

    def _iam(self, workspace_id: uuid.UUID) -> list[str]:
        """Roles and policies under ``/canopy/`` named after the workspace and tagged for it; OIDC providers tagged
        for it."""
        iam = self._client("iam")
        sid = short_id(workspace_id)
        found = []
        for page in iam.get_paginator("list_roles").paginate(PathPrefix=IAM_PATH):
            for role in page["Roles"]:
                if sid in role["RoleName"] and self._owned(iam.list_role_tags(RoleName=role["RoleName"]), workspace_id):
                    found.append(f"iam role {role['Arn']}")
        for page in iam.get_paginator("list_policies").paginate(Scope="Local", PathPrefix=IAM_PATH):
            for policy in page["Policies"]:
                tags = iam.list_policy_tags(PolicyArn=policy["Arn"]) if sid in policy["PolicyName"] else {}
                if self._owned(tags, workspace_id):
                    found.append(f"iam policy {policy['Arn']}")
        for provider in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]:
            if oidc_provider_owner(iam, provider["Arn"]) == str(workspace_id):
                found.append(f"iam oidc provider {provider['Arn']}")
        return found

    @staticmethod
    def _owned(tagged: dict[str, Any], workspace_id: uuid.UUID) -> bool:
        return tags_from_list(tagged.get("Tags", [])).get(TAG_WORKSPACE) == str(workspace_id)

    def _records(self, records: Iterable[tuple[str, str]]) -> list[str]:
        route53 = self._client("route53")
        return [f"route53 record {name}" for zone_id, name in records if find_record(route53, zone_id, name)]
