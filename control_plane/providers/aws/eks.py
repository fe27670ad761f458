"""The EKS cluster and nodegroup of an enterprise silo, their IAM roles, and the cluster's IAM OIDC provider."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from control_plane.providers.aws.common import Aws, SiloConfig, absent, arn_parts, tags_of, tolerating
from control_plane.providers.aws.kms import SiloKms
from control_plane.providers.base import Ensured, ProviderError, WorkspaceSpec
from infra.conventions import (
    EKS,
    IAM_PATH,
    STS_AUDIENCE,
    TAG_WORKSPACE,
    WorkspaceNames,
    eks_tags,
    oidc_provider_arn,
    tag_list,
    tags_from_list,
)

AWS_POLICY = "arn:{partition}:iam::aws:policy/{name}"
CLUSTER_TRUST = "eks.amazonaws.com"
NODE_TRUST = "ec2.amazonaws.com"
CLUSTER_POLICIES = ("AmazonEKSClusterPolicy",)
NODE_POLICIES = ("AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly")
FAILED = frozenset({"FAILED", "CREATE_FAILED", "DELETING", "DELETE_FAILED"})


def _trust(service: str) -> str:
    statement = {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


class SiloCluster:
    """``canopy-<env>-<short id>``: private API endpoint only, Secrets envelope-encrypted with the tenant key,
    control-plane logs on, access entries (API) authentication; a managed nodegroup ``...-nodes`` in the
    private subnets; cluster and node roles under ``/canopy/``; the IAM OIDC provider of the cluster's issuer (the
    workspace's pods assume their role through it). Everything tagged.

    An ensure waits for ACTIVE (cluster before nodegroup) even where AWS answers at once; a teardown
    deletes the nodegroup, waits, deletes the cluster, waits, then the roles and the OIDC provider.
    """

    def __init__(self, aws: Aws, config: SiloConfig, kms: SiloKms) -> None:
        self._aws = aws
        self._config = config
        self._kms = kms

    def _eks(self) -> Any:
        return self._aws.client("eks", self._config.region)

    def _iam(self) -> Any:
        return self._aws.client("iam", self._config.region)

    def _cluster(self, names: WorkspaceNames) -> dict[str, Any] | None:
        eks = self._eks()
        return absent(lambda: eks.describe_cluster(name=names.eks_cluster)["cluster"], "ResourceNotFoundException")

    def _nodegroup(self, names: WorkspaceNames) -> dict[str, Any] | None:
        eks = self._eks()
        return absent(
            lambda: eks.describe_nodegroup(clusterName=names.eks_cluster, nodegroupName=names.eks_nodegroup)[
                "nodegroup"
            ],
            "ResourceNotFoundException",
        )

    def _role(self, name: str) -> dict[str, Any] | None:
        iam = self._iam()
        return absent(lambda: iam.get_role(RoleName=name)["Role"], "NoSuchEntity")

    # -- ensure ---------------------------------------------------------------------------------

    def ensure(self, ws: WorkspaceSpec) -> Ensured:
        names = self._config.names(ws)
        if len(self._config.subnet_ids) < 2:
            raise ProviderError("set CANOPY_AWS_PRIVATE_SUBNET_IDS (2+ private subnets) for silo clusters")
        key_arn = self._kms.key_arn(ws)
        created: list[str] = []
        cluster_role = self._ensure_role(ws, names.cluster_role, CLUSTER_TRUST, CLUSTER_POLICIES, created)
        node_role = self._ensure_role(ws, names.node_role, NODE_TRUST, NODE_POLICIES, created)
        if self._cluster(names) is None:
            self._create_cluster(ws, names, cluster_role, key_arn)
            created.append("eks_cluster")
        cluster = self._wait_active("cluster", names, self._cluster)
        if self._nodegroup(names) is None:
            self._create_nodegroup(ws, names, node_role)
            created.append("eks_nodegroup")
        self._wait_active("nodegroup", names, self._nodegroup)
        outputs = {
            "cluster_name": names.eks_cluster,
            "cluster_arn": cluster["arn"],
            "cluster_endpoint": cluster["endpoint"],
            "cluster_ca": cluster["certificateAuthority"]["data"],
            "nodegroup_name": names.eks_nodegroup,
            "oidc_provider_arn": self._ensure_oidc_provider(ws, cluster, created),
        }
        return Ensured(outputs, tuple(created))

    def _ensure_oidc_provider(self, ws: WorkspaceSpec, cluster: dict[str, Any], created: list[str]) -> str:
        """The ARN of the IAM OIDC provider of the cluster's issuer (its pods' roles trust it); created tagged with
        the ``sts.amazonaws.com`` audience if missing, its tags and audience converged if not."""
        issuer = cluster["identity"]["oidc"]["issuer"]
        arn = _oidc_provider_of(cluster)
        iam = self._iam()
        provider = absent(lambda: iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn), "NoSuchEntity")
        if provider is None:
            iam.create_open_id_connect_provider(Url=issuer, ClientIDList=[STS_AUDIENCE], Tags=tag_list(tags_of(ws)))
            created.append("oidc_provider")
            return arn
        owner = tags_from_list(provider.get("Tags", [])).get(TAG_WORKSPACE)
        if owner not in (None, str(ws.id)):
            raise ProviderError(f"the IAM OIDC provider of {issuer} belongs to workspace {owner}")
        iam.tag_open_id_connect_provider(OpenIDConnectProviderArn=arn, Tags=tag_list(tags_of(ws)))
        if STS_AUDIENCE not in provider.get("ClientIDList", []):
            iam.add_client_id_to_open_id_connect_provider(OpenIDConnectProviderArn=arn, ClientID=STS_AUDIENCE)
        return arn

    def oidc_provider_arn(self, ws: WorkspaceSpec) -> str:
        """The ARN of the silo cluster's IAM OIDC provider (the cluster step made it)."""
        cluster = self._cluster(self._config.names(ws))
        if cluster is None:
            raise ProviderError("the workspace's EKS cluster does not exist")
        return _oidc_provider_of(cluster)

    def _oidc_providers(self, ws: WorkspaceSpec) -> list[str]:
        """ARNs of the IAM OIDC providers tagged for ``ws`` (by tag: the cluster naming the issuer may be gone)."""
        iam = self._iam()
        return [
            provider["Arn"]
            for provider in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]
            if oidc_provider_owner(iam, provider["Arn"]) == str(ws.id)
        ]

    def _ensure_role(
        self, ws: WorkspaceSpec, name: str, service: str, policies: tuple[str, ...], created: list[str]
    ) -> str:
        """The role's ARN; created with ``service`` trust if missing, and the AWS policies attached."""
        role = self._role(name)
        if role is None:
            role = self._iam().create_role(
                RoleName=name,
                Path=IAM_PATH,
                AssumeRolePolicyDocument=_trust(service),
                Description=f"Canopy workspace {ws.id}",
                Tags=tag_list(tags_of(ws)),
            )["Role"]
            created.append("cluster_role" if service == CLUSTER_TRUST else "node_role")
        partition = role["Arn"].split(":")[1]
        for policy in policies:
            self._iam().attach_role_policy(RoleName=name, PolicyArn=AWS_POLICY.format(partition=partition, name=policy))
        return str(role["Arn"])

    def _create_cluster(self, ws: WorkspaceSpec, names: WorkspaceNames, role_arn: str, key_arn: str) -> None:
        self._eks().create_cluster(
            name=names.eks_cluster,
            version=EKS.kubernetes_version,
            roleArn=role_arn,
            resourcesVpcConfig=EKS.vpc_config(self._config.subnet_ids),
            encryptionConfig=EKS.encryption_config(key_arn),
            logging={"clusterLogging": [{"types": list(EKS.cluster_log_types), "enabled": True}]},
            accessConfig={"authenticationMode": EKS.authentication_mode},
            tags=eks_tags(tags_of(ws)),
        )

    def _create_nodegroup(self, ws: WorkspaceSpec, names: WorkspaceNames, role_arn: str) -> None:
        count = self._config.node_count
        self._eks().create_nodegroup(
            clusterName=names.eks_cluster,
            nodegroupName=names.eks_nodegroup,
            subnets=list(self._config.subnet_ids),
            nodeRole=role_arn,
            instanceTypes=list(EKS.node_instance_types[ws.tier]),
            amiType=EKS.ami_type,
            diskSize=EKS.node_disk_gb,
            scalingConfig={"minSize": count, "desiredSize": count, "maxSize": 2 * count},
            tags=eks_tags(tags_of(ws)),
        )

    def _wait_active(
        self, what: str, names: WorkspaceNames, describe: Callable[[WorkspaceNames], dict[str, Any] | None]
    ) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        def active() -> bool:
            found = describe(names)
            status = found["status"] if found else "missing"
            if status in FAILED or found is None:
                raise ProviderError(f"the workspace's EKS {what} is {status}")
            seen.update(found)
            return bool(status == "ACTIVE")

        self._config.waits.until(f"EKS {what} {names.eks_cluster}", active)
        return seen

    # -- teardown -------------------------------------------------------------------------------

    def teardown(self, ws: WorkspaceSpec) -> None:
        names = self._config.names(ws)
        waits = self._config.waits
        nodegroup = self._nodegroup(names)
        if nodegroup is not None:
            if nodegroup["status"] != "DELETING":
                self._eks().delete_nodegroup(clusterName=names.eks_cluster, nodegroupName=names.eks_nodegroup)
            waits.until(f"deletion of {names.eks_nodegroup}", lambda: self._nodegroup(names) is None)
        cluster = self._cluster(names)
        if cluster is not None:
            if cluster["status"] != "DELETING":
                self._eks().delete_cluster(name=names.eks_cluster)
            waits.until(f"deletion of {names.eks_cluster}", lambda: self._cluster(names) is None)
        for role in (names.node_role, names.cluster_role):
            self._delete_role(role)
        for arn in self._oidc_providers(ws):
            with tolerating("NoSuchEntity"):
                self._iam().delete_open_id_connect_provider(OpenIDConnectProviderArn=arn)

    def _delete_role(self, name: str) -> None:
        iam = self._iam()
        attached = absent(lambda: iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"], "NoSuchEntity")
        for policy in attached or []:
            iam.detach_role_policy(RoleName=name, PolicyArn=policy["PolicyArn"])
        with tolerating("NoSuchEntity"):
            iam.delete_role(RoleName=name)

    def leftovers(self, ws: WorkspaceSpec) -> list[str]:
        names = self._config.names(ws)
        found = [f"eks cluster {names.eks_cluster}"] if self._cluster(names) else []
        found += [f"eks nodegroup {names.eks_nodegroup}"] if found and self._nodegroup(names) else []
        found += [f"iam role {role}" for role in (names.cluster_role, names.node_role) if self._role(role)]
        return found + [f"iam oidc provider {arn}" for arn in self._oidc_providers(ws)]


def _oidc_provider_of(cluster: dict[str, Any]) -> str:
    """The ARN of the IAM OIDC provider of a described cluster's issuer (in the cluster's account)."""
    partition, account = arn_parts(cluster["arn"])
    return oidc_provider_arn(partition, account, cluster["identity"]["oidc"]["issuer"])


def oidc_provider_owner(iam: Any, arn: str) -> str | None:
    """The ``canopy:workspace`` tag of the IAM OIDC provider ``arn`` (None when untagged or gone)."""
    tags = absent(lambda: iam.list_open_id_connect_provider_tags(OpenIDConnectProviderArn=arn)["Tags"], "NoSuchEntity")
    return tags_from_list(tags or []).get(TAG_WORKSPACE)
