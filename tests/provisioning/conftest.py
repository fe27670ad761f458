"""Production providers end to end: real worker processes with ``CANOPY_PROVIDER=aws`` against a moto server,
the machine's PostgreSQL (the cell's shared database) and the real Kubernetes test cluster, to which every EKS
cluster name resolves (``CANOPY_KUBECONFIG_OVERRIDES={"*": ...}``).

The test cluster has no cloud and runs no ingress controller: ``tests/harness/cloud_controller.py`` gives the silo
controllers' LoadBalancer Services an NLB hostname and publishes it on their Ingresses, as AWS and ingress-nginx
would. Pods are not processes, so Available does not ping (``CANOPY_AWS_PROBE_HTTP=false``).
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import boto3
import pytest

from control_plane.cells.models import Cell
from control_plane.cells.service import OUTPUT_FIELDS
from control_plane.core import db as core_db
from control_plane.core.migrate import upgrade
from control_plane.kube.client import KubeClient
from control_plane.kube.render import ApiVersions, managed_kinds
from control_plane.organizations.models import Organization
from control_plane.workspaces import service
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Tier
from infra.conventions import TAG_WORKSPACE, tag_filters, tags_from_list
from tests.aws.conftest import SILO_DOMAIN, CloudCell, aws_cell  # noqa: F401
from tests.harness.cloud_controller import StandInCloudController
from tests.harness.fixtures import kube_cluster  # noqa: F401
from tests.harness.kubernetes import TestCluster
from tests.harness.moto import REGION, moto_server  # noqa: F401
from tests.reconciler.conftest import FAST_ENV, Plane, _reset_in_process_caches, password_hash, secret_env

KUBE_VERSIONS = ApiVersions(pdb="policy/v1beta1", hpa="autoscaling/v2beta2")  # what the 1.20 test cluster serves
AWS_ENV = {
    "CANOPY_PROVIDER": "aws",
    "CANOPY_AWS_PROBE_HTTP": "false",
    "CANOPY_AWS_ENVIRONMENT": "test",
    "CANOPY_AWS_REGION": REGION,
    "CANOPY_DEFAULT_REGION": REGION,
    "CANOPY_AWS_ZONE_DOMAIN": SILO_DOMAIN,
    "CANOPY_AWS_WAIT_TIMEOUT_SECONDS": "10",
    "CANOPY_AWS_POLL_SECONDS": "0.05",
    "CANOPY_CELL_POSTGRES_SSLMODE": "disable",
    "CANOPY_KUBE_ROLLOUT_TIMEOUT_SECONDS": "60",
    "CANOPY_STALLED_WORKER_SECONDS": "3",
    "CANOPY_WORKER_HEARTBEAT_SECONDS": "1",
}


class TempDirs(Protocol):
    """What :func:`aws_plane` takes of pytest's ``tmp_path_factory``: a new directory per call (a bench outside
    pytest passes its own)."""

    def mktemp(self, basename: str) -> Path: ...


def register_cell(cell: CloudCell, capacity: int | None = None) -> None:
    """The session's moto cell as a registered cell (built directly: moto's zone ids fail the registry's check),
    holding ``capacity`` workspaces and databases when given."""
    outputs = cell.outputs
    if capacity is not None:
        outputs = replace(outputs, max_workspaces=capacity, max_databases=capacity)
    values = {name: getattr(outputs, name) for name in OUTPUT_FIELDS}
    with core_db.session_scope() as session:
        session.add(Cell(**values | {"private_subnet_ids": list(outputs.private_subnet_ids)}))


@contextlib.contextmanager
def aws_plane(
    create_database: Callable[[str], str],
    tmp_path_factory: TempDirs,
    kube_cluster: TestCluster,  # noqa: F811
    aws_cell: CloudCell,  # noqa: F811
    name: str,
    capacity: int | None = None,
    cloud: StandInCloudController | None = None,
    **extra_env: str,
) -> Iterator[Plane]:
    """A migrated control plane with the aws provider (``extra_env`` on top), the session's cell registered, the
    stand-in cloud controller (``cloud``, else a new one with its default delays) running."""
    url = create_database(name)
    upgrade(url)
    overrides = {
        "CANOPY_DATABASE_URL": url,
        "CANOPY_STATE_DIR": str(tmp_path_factory.mktemp("state")),
        **secret_env(),
        "CANOPY_AWS_PRIVATE_SUBNET_IDS": json.dumps(list(aws_cell.outputs.private_subnet_ids)),
        "CANOPY_AWS_ZONE_ID": aws_cell.silo_zone_id,
        "CANOPY_KUBECONFIG_OVERRIDES": json.dumps({"*": str(kube_cluster.kubeconfig)}),
        **FAST_ENV,
        **AWS_ENV,
        **extra_env,
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANOPY_")} | overrides
    cloud = cloud or StandInCloudController(kube_cluster.kubeconfig, REGION)
    with pytest.MonkeyPatch.context() as mp, cloud:
        for key, value in overrides.items():
            mp.setenv(key, value)
        _reset_in_process_caches()
        register_cell(aws_cell, capacity)
        p = Plane(
            url=url, state_dir=tmp_path_factory.mktemp("unused"), log_dir=tmp_path_factory.mktemp("logs"), env=env
        )
        try:
            yield p
        finally:
            p.close_api()
            p.stop_workers()
            p.drop_workspace_databases()
            _reset_in_process_caches()
    _reset_in_process_caches()


@pytest.fixture(scope="module")
def plane(
    create_database: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
    kube_cluster: TestCluster,  # noqa: F811
    aws_cell: CloudCell,  # noqa: F811
) -> Iterator[Plane]:
    """:func:`aws_plane` with the default settings."""
    with aws_plane(create_database, tmp_path_factory, kube_cluster, aws_cell, "provisioning") as p:
        yield p


@pytest.fixture(scope="module")
def kube(kube_cluster: TestCluster) -> Iterator[KubeClient]:  # noqa: F811
    """An admin client of the test cluster."""
    client = KubeClient.from_kubeconfig(kube_cluster.kubeconfig)
    yield client
    client.close()


def create_workspace(slug: str, tier: Tier) -> uuid.UUID:
    """A workspace made the way the API makes one (placed in a cell when professional), waiting to provision."""
    with core_db.session_scope() as session:
        org = Organization(name=f"Org {slug}")
        session.add(org)
        session.flush()
        ws = service.new_workspace(
            session,
            organization_id=org.id,
            slug=slug,
            display_name=f"Team {slug}",
            tier=tier,
            region=None,
            state=Lifecycle.provisioning,
            actor="test",
            initial_admin=(f"{slug}.admin@example.com", password_hash()),
        )
        return ws.id


def new_workspace(plane: Plane, slug: str, tier: Tier) -> uuid.UUID:
    """:func:`create_workspace`, its database dropped with the plane."""
    ws_id = create_workspace(slug, tier)
    plane.workspace_ids.append(ws_id)
    return ws_id


def kube_objects(kube: KubeClient, workspace_id: uuid.UUID) -> Counter[str]:
    """How many objects of each kind are labelled with the workspace's id, on the test cluster."""
    found = kube.list_by_labels(f"canopy/workspace={workspace_id}", managed_kinds(KUBE_VERSIONS))
    return Counter(obj["kind"] for obj in found)


def aws_resources(workspace_id: uuid.UUID) -> Counter[str]:
    """How many resources of each type moto holds for the workspace (by tag; EKS and IAM per service, OIDC providers
    by their tags)."""
    pages = boto3.client("resourcegroupstaggingapi").get_paginator("get_resources")
    arns = [
        item["ResourceARN"]
        for page in pages.paginate(TagFilters=tag_filters({TAG_WORKSPACE: str(workspace_id)}))
        for item in page["ResourceTagMappingList"]
    ]
    found = Counter(_arn_type(arn) for arn in arns if resource_alive(arn))
    eks = boto3.client("eks")
    for name in eks.list_clusters()["clusters"]:
        cluster = eks.describe_cluster(name=name)["cluster"]
        if cluster.get("tags", {}).get(TAG_WORKSPACE) == str(workspace_id):
            found["eks cluster"] += 1
            found["eks nodegroup"] += len(eks.list_nodegroups(clusterName=name)["nodegroups"])
    iam = boto3.client("iam")
    sid = workspace_id.hex[:12]
    found["iam role"] += sum(sid in r["RoleName"] for r in iam.list_roles(PathPrefix="/canopy/")["Roles"])
    policies = iam.list_policies(Scope="Local", PathPrefix="/canopy/")["Policies"]
    found["iam policy"] += sum(sid in p["PolicyName"] for p in policies)
    for provider in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]:
        tags = tags_from_list(iam.list_open_id_connect_provider_tags(OpenIDConnectProviderArn=provider["Arn"])["Tags"])
        found["iam oidc-provider"] += tags.get(TAG_WORKSPACE) == str(workspace_id)
    return +found


def _arn_type(arn: str) -> str:
    service_name, resource = arn.split(":")[2], arn.split(":", 5)[5]
    kind = resource.split(":")[0].split("/")[0] if service_name != "s3" else "bucket"
    return f"{service_name} {kind}"


def resource_alive(arn: str) -> bool:
    """Keys pending deletion, deleted secrets and snapshots are on their way out (or kept on purpose)."""
    if ":kms:" in arn:
        return bool(boto3.client("kms").describe_key(KeyId=arn)["KeyMetadata"]["KeyState"] == "Enabled")
    if ":secretsmanager:" in arn:
        return not boto3.client("secretsmanager").describe_secret(SecretId=arn).get("DeletedDate")
    return ":snapshot:" not in arn


def condition(ws: Any, type_: str) -> str | None:
    """The status of condition ``type_`` ("True"/"False"), or None."""
    return {c["type"]: c["status"] for c in ws.conditions}.get(type_)
