"""IAM of a workspace: its storage policy and the role its pods assume (EKS IAM roles for service accounts).

The role ``canopy-<env>-<short id>-app`` (under ``/canopy/``, tagged) trusts only the web identity of the
``workspace-server`` service account in the workspace's namespace, as issued by the IAM OIDC provider of the
cluster it runs on (the cell's shared cluster, or the silo's own), and carries exactly one policy: the files of
the workspace (a prefix of the cell's bucket, or the silo's bucket and key).
"""

from __future__ import annotations

import json
from typing import Any

from control_plane.providers.aws.common import (
    Aws,
    CellLookup,
    SiloConfig,
    absent,
    arn_parts,
    cell_of,
    tags_of,
    tolerating,
)
from control_plane.providers.aws.eks import SiloCluster
from control_plane.providers.aws.kms import SiloKms
from control_plane.providers.base import Ensured, ProviderError, WorkspaceSpec
from infra.conventions import (
    IAM_PATH,
    WORKSPACE_SERVICE_ACCOUNT,
    bucket_arn,
    bucket_policy,
    tag_list,
    web_identity_trust_policy,
    workspace_names,
)

MAX_POLICY_VERSIONS = 5


def policy_arn(partition: str, account_id: str, name: str) -> str:
    """The ARN of customer managed policy ``name`` under ``/canopy/``."""
    return f"arn:{partition}:iam::{account_id}:policy{IAM_PATH}{name}"


def canopy_policies(iam: Any) -> list[dict[str, Any]]:
    """Every customer-managed policy under Canopy's IAM path (one paginated listing)."""
    pages = iam.get_paginator("list_policies").paginate(Scope="Local", PathPrefix=IAM_PATH)
    return [policy for page in pages for policy in page["Policies"]]


def ensure_policy(iam: Any, ws: WorkspaceSpec, arn: str, document: dict[str, Any]) -> bool:
    """Create the policy ``arn`` (tagged, under ``/canopy/``) with ``document``, or make ``document`` its default
    version; whether it was created."""
    policy = absent(lambda: iam.get_policy(PolicyArn=arn)["Policy"], "NoSuchEntity")
    if policy is None:
        iam.create_policy(
            PolicyName=arn.rsplit("/", 1)[-1],
            Path=IAM_PATH,
            PolicyDocument=json.dumps(document),
            Description=f"Files of Canopy workspace {ws.id}",
            Tags=tag_list(tags_of(ws)),
        )
        return True
    current = iam.get_policy_version(PolicyArn=arn, VersionId=policy["DefaultVersionId"])["PolicyVersion"]
    if current["Document"] != document:
        versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
        if len(versions) >= MAX_POLICY_VERSIONS:
            oldest = min((v for v in versions if not v["IsDefaultVersion"]), key=lambda v: v["CreateDate"])
            iam.delete_policy_version(PolicyArn=arn, VersionId=oldest["VersionId"])
        iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(document), SetAsDefault=True)
    return False


def delete_policy(iam: Any, arn: str) -> None:
    """Detach the policy from every role, delete its other versions, then the policy (gone already is fine)."""
    if not policy_exists(iam, arn):
        return
    for role in iam.list_entities_for_policy(PolicyArn=arn, EntityFilter="Role")["PolicyRoles"]:
        with tolerating("NoSuchEntity"):
            iam.detach_role_policy(RoleName=role["RoleName"], PolicyArn=arn)
    for version in iam.list_policy_versions(PolicyArn=arn)["Versions"]:
        if not version["IsDefaultVersion"]:
            iam.delete_policy_version(PolicyArn=arn, VersionId=version["VersionId"])
    with tolerating("NoSuchEntity"):
        iam.delete_policy(PolicyArn=arn)


def policy_exists(iam: Any, arn: str) -> bool:
    """Whether the managed policy ``arn`` exists."""
    return absent(lambda: iam.get_policy(PolicyArn=arn), "NoSuchEntity") is not None


class WorkloadRoles:
    """The workspace roles of one environment: trust converged, exactly one policy attached."""

    def __init__(self, aws: Aws, env: str) -> None:
        self._aws = aws
        self._env = env

    def ensure(self, ws: WorkspaceSpec, region: str, oidc_provider_arn: str, policy: str) -> tuple[str, bool]:
        """The role's ARN and whether this call created it; an existing role's trust policy is converged and any
        policy but ``policy`` detached."""
        names = workspace_names(self._env, ws.id)
        name = names.app_role
        iam = self._aws.client("iam", region)
        trust = web_identity_trust_policy(oidc_provider_arn, names.namespace, WORKSPACE_SERVICE_ACCOUNT)
        role = absent(lambda: iam.get_role(RoleName=name)["Role"], "NoSuchEntity")
        created = role is None
        if role is None:
            role = iam.create_role(
                RoleName=name,
                Path=IAM_PATH,
                AssumeRolePolicyDocument=json.dumps(trust),
                Description=f"Pods of Canopy workspace {ws.id}",
                Tags=tag_list(tags_of(ws)),
            )["Role"]
        elif role.get("AssumeRolePolicyDocument") != trust:
            iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust))
        attached = {p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]}
        for stray in attached - {policy}:
            iam.detach_role_policy(RoleName=name, PolicyArn=stray)
        if policy not in attached:
            iam.attach_role_policy(RoleName=name, PolicyArn=policy)
        return str(role["Arn"]), created

    def delete(self, ws: WorkspaceSpec, region: str) -> None:
        """Detach the role's policies and delete it (gone already is fine)."""
        name = workspace_names(self._env, ws.id).app_role
        iam = self._aws.client("iam", region)
        attached = absent(lambda: iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"], "NoSuchEntity")
        for policy in attached or []:
            with tolerating("NoSuchEntity"):
                iam.detach_role_policy(RoleName=name, PolicyArn=policy["PolicyArn"])
        with tolerating("NoSuchEntity"):
            iam.delete_role(RoleName=name)

    def leftovers(self, ws: WorkspaceSpec, region: str) -> list[str]:
        """The role, while it exists."""
        name = workspace_names(self._env, ws.id).app_role
        iam = self._aws.client("iam", region)
        return [f"iam role {name}"] if absent(lambda: iam.get_role(RoleName=name), "NoSuchEntity") else []


class PooledIdentity:
    """A pooled workspace's role, trusting the cell's OIDC provider and carrying the storage step's prefix policy."""

    def __init__(self, aws: Aws, env: str, cells: CellLookup) -> None:
        self._roles = WorkloadRoles(aws, env)
        self._env = env
        self._cells = cells

    def ensure(self, ws: WorkspaceSpec) -> Ensured:
        cell = cell_of(self._cells, ws)
        if not cell.oidc_provider_arn:
            raise ProviderError(f"cell {cell.name} was registered without its oidc_provider_arn (before 0004)")
        partition, account = arn_parts(cell.control_plane_role_arn)
        storage = policy_arn(partition, account, workspace_names(self._env, ws.id).storage_policy)
        arn, created = self._roles.ensure(ws, cell.region, cell.oidc_provider_arn, storage)
        return Ensured({"workload_role_arn": arn}, ("app_role",) if created else ())

    def teardown(self, ws: WorkspaceSpec) -> None:
        self._roles.delete(ws, cell_of(self._cells, ws).region)

    def leftovers(self, ws: WorkspaceSpec) -> list[str]:
        return self._roles.leftovers(ws, cell_of(self._cells, ws).region)


class SiloIdentity:
    """An enterprise silo's role, trusting the silo cluster's OIDC provider, and its storage policy: the silo's
    bucket and key (``canopy-<env>-<short id>-files`` under ``/canopy/``, tagged)."""

    def __init__(self, aws: Aws, config: SiloConfig, kms: SiloKms, cluster: SiloCluster) -> None:
        self._aws = aws
        self._roles = WorkloadRoles(aws, config.env)
        self._config = config
        self._kms = kms
        self._cluster = cluster

    def _policy_arn(self, ws: WorkspaceSpec, oidc_provider_arn: str) -> str:
        partition, account = arn_parts(oidc_provider_arn)
        return policy_arn(partition, account, self._config.names(ws).storage_policy)

    def ensure(self, ws: WorkspaceSpec) -> Ensured:
        names = self._config.names(ws)
        oidc = self._cluster.oidc_provider_arn(ws)
        storage = self._policy_arn(ws, oidc)
        partition, _ = arn_parts(oidc)
        document = bucket_policy(bucket_arn(names.bucket, partition), self._kms.key_arn(ws))
        iam = self._aws.client("iam", self._config.region)
        created = ("storage_policy",) if ensure_policy(iam, ws, storage, document) else ()
        arn, role_created = self._roles.ensure(ws, self._config.region, oidc, storage)
        outputs = {"workload_role_arn": arn, "storage_policy_arn": storage}
        return Ensured(outputs, created + (("app_role",) if role_created else ()))

    def teardown(self, ws: WorkspaceSpec) -> None:
        self._roles.delete(ws, self._config.region)
        iam = self._aws.client("iam", self._config.region)
        for arn in self._storage_policies(iam, ws):
            delete_policy(iam, arn)

    def _storage_policies(self, iam: Any, ws: WorkspaceSpec) -> list[str]:
        """The silo storage policy's ARN, found by name (the cluster, which gives the account, may be gone)."""
        name = self._config.names(ws).storage_policy
        return [p["Arn"] for p in canopy_policies(iam) if p["PolicyName"] == name]

    def leftovers(self, ws: WorkspaceSpec) -> list[str]:
        iam = self._aws.client("iam", self._config.region)
        found = self._roles.leftovers(ws, self._config.region)
        return found + [f"iam policy {arn}" for arn in self._storage_policies(iam, ws)]
