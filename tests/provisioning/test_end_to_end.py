"""A worker provisions each tier with the aws provider, then deletes it: every resource secure, labelled and
counted once, the rollout complete; after deletion the leak sweep and the cluster find nothing of it.
"""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

import boto3
import psycopg
import pytest

from control_plane.core.settings import get_settings
from control_plane.kube.client import KubeClient
from control_plane.kube.rollout import rollout_status
from control_plane.providers.aws.common import Aws
from control_plane.providers.aws.sets import silo_providers
from control_plane.providers.aws.sweep import LeakSweep
from control_plane.reconciler import records
from control_plane.reconciler.queue import Cause, defer_reconcile
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Tier
from infra.conventions import (
    TAG_KEPT_FOR,
    TAG_WORKSPACE,
    bucket_policy,
    kubernetes_labels,
    prefix_policy,
    s3_tagging,
    tags_from_list,
    workspace_names,
    workspace_tags,
)
from tests.aws.conftest import CELL, CELL_DOMAIN, SILO_DOMAIN, CloudCell
from tests.aws.test_silo import (
    _assert_attached,
    _assert_bucket,
    _assert_cluster,
    _assert_database,
    _assert_key,
    _assert_workload_role,
    silo_oidc_provider,
)
from tests.harness.moto import REGION
from tests.provisioning.conftest import aws_resources, kube_objects, new_workspace, resource_alive
from tests.reconciler.conftest import Plane

pytestmark = pytest.mark.slow

CONDITIONS = {"DatabaseReady", "StorageReady", "IdentityReady", "ComputeReady", "DnsReady", "Available"}
KUBE_COMMON = {
    "Namespace": 1, "ServiceAccount": 1, "Secret": 1, "ConfigMap": 1, "Deployment": 1, "ReplicaSet": 1, "Service": 1,
    "Ingress": 1, "PodDisruptionBudget": 1,
}  # fmt: skip
EXPECTED_KUBE = {
    Tier.professional: KUBE_COMMON | {"ResourceQuota": 1, "LimitRange": 1, "NetworkPolicy": 2, "Pod": 1},
    Tier.enterprise: KUBE_COMMON | {"HorizontalPodAutoscaler": 1, "Pod": 2},
}
EXPECTED_AWS = {
    Tier.professional: {"iam policy": 1, "iam role": 1},
    Tier.enterprise: {
        "kms key": 1, "s3 bucket": 1, "rds db": 1, "secretsmanager secret": 1, "eks cluster": 1, "eks nodegroup": 1,
        "iam role": 3, "iam policy": 1, "iam oidc-provider": 1, "ec2 security-group": 1, "acm certificate": 1,
    },
}  # fmt: skip


def test_professional_workspace_end_to_end(plane: Plane, kube: KubeClient, aws_cell: CloudCell) -> None:
    ws_id = new_workspace(plane, f"pro{uuid.uuid4().hex[:6]}", Tier.professional)
    ws = _provision(plane, ws_id, Lifecycle.trialing)
    assert ws.cell == CELL and ws.endpoint_url == f"https://{ws.slug}.{CELL_DOMAIN}"
    assert aws_resources(ws_id) == EXPECTED_AWS[Tier.professional]
    assert kube_objects(kube, ws_id) == EXPECTED_KUBE[Tier.professional]
    names = workspace_names("test", ws_id)
    tags = workspace_tags(ws_id, ws.organization_id, "professional", CELL)

    iam = boto3.client("iam")
    arn = ws.outputs["storage_policy_arn"]
    policy = iam.get_policy(PolicyArn=arn)["Policy"]
    document = iam.get_policy_version(PolicyArn=arn, VersionId=policy["DefaultVersionId"])["PolicyVersion"]
    bucket = aws_cell.outputs.bucket_name
    assert document["Document"] == prefix_policy(
        f"arn:aws:s3:::{bucket}", names.pooled_prefix, aws_cell.outputs.kms_key_arn
    )
    assert tags_from_list(iam.list_policy_tags(PolicyArn=arn)["Tags"]) == tags
    _assert_workload_role(names.app_role, aws_cell.outputs.oidc_provider_arn, names.namespace, tags)
    _assert_attached(names.app_role, document["Document"], tags)  # the prefix policy, nothing else
    with psycopg.connect(plane.url, autocommit=True) as conn:
        role = conn.execute(
            "SELECT rolconnlimit, rolsuper, rolcreatedb, rolcreaterole,"
            " (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s),"
            " has_database_privilege('public', %s, 'CONNECT')"
            " FROM pg_roles WHERE rolname = %s",
            [names.pooled_database] * 3,
        ).fetchone()
    assert role == (20, False, False, False, names.pooled_database, False)
    _assert_record(aws_cell.outputs.zone_id, f"{ws.slug}.{CELL_DOMAIN}", f"ingress.{CELL_DOMAIN}")

    ns = names.namespace
    quota = _get(kube, "v1", "ResourceQuota", "workspace-quota", ns)
    assert quota["spec"]["hard"]["pods"] == "20"
    deny = _get(kube, "networking.k8s.io/v1", "NetworkPolicy", "default-deny", ns)["spec"]
    assert deny["podSelector"] == {} and deny["policyTypes"] == ["Ingress", "Egress"]
    env = _workload(kube, ns, ws.slug, CELL_DOMAIN, tags, ws.outputs["workload_role_arn"])
    assert env["WS_S3_BUCKET"] == bucket and env["WS_S3_PREFIX"] == names.pooled_prefix
    assert env["WS_DATABASE_URL"].startswith(f"postgresql://{names.pooled_database}:")

    _delete(plane, kube, ws_id, [(aws_cell.outputs.zone_id, f"{ws.slug}.{CELL_DOMAIN}")])
    _assert_gone(names.app_role, arn)
    with psycopg.connect(plane.url, autocommit=True) as conn:
        assert conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [names.pooled_database]).fetchone() is None


def test_pooled_credentials_open_only_their_own_database(plane: Plane, kube: KubeClient) -> None:
    """The database URLs the pods get (from their Secrets): one workspace's cannot open or read another's."""
    a, b = (new_workspace(plane, f"iso{uuid.uuid4().hex[:6]}", Tier.professional) for _ in range(2))
    for ws_id in (a, b):
        defer_reconcile(ws_id, Cause.signup)
    _provision(plane, a, Lifecycle.trialing)
    _provision(plane, b, Lifecycle.trialing)
    url_a, url_b = (
        _secret_without_admin(kube, workspace_names("test", w).namespace)["WS_DATABASE_URL"] for w in (a, b)
    )
    name_a, name_b = (workspace_names("test", w).pooled_database for w in (a, b))
    with psycopg.connect(url_b, autocommit=True) as conn:
        conn.execute("CREATE TABLE secrets (value text)")
    # The test server trusts 127.0.0.1 (no password check): what stops A is the database ACL itself.
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        psycopg.connect(url_a.replace(f"/{name_a}?", f"/{name_b}?")).close()
    with psycopg.connect(url_a, autocommit=True) as conn:
        assert conn.execute("SELECT current_user, current_database()").fetchone() == (name_a, name_a)
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("SELECT * FROM secrets")


def test_a_leftover_keeps_the_workspace_pending_deletion(plane: Plane, kube: KubeClient) -> None:
    ws_id = new_workspace(plane, f"leak{uuid.uuid4().hex[:6]}", Tier.professional)
    ws = _provision(plane, ws_id, Lifecycle.trialing)
    stray = f"stray-{ws_id.hex[:12]}"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=stray, CreateBucketConfiguration={"LocationConstraint": REGION})
    tags = workspace_tags(ws_id, ws.organization_id, "professional", CELL)
    s3.put_bucket_tagging(Bucket=stray, Tagging=s3_tagging(tags))

    plane.purge(ws_id)
    ws = plane.wait_for(ws_id, lambda w: "leak sweep" in (w.last_error or ""), timeout=60)
    assert ws.lifecycle_state == Lifecycle.pending_deletion and f"arn:aws:s3:::{stray}" in ws.last_error
    assert kube_objects(kube, ws_id) == {}, "everything else was torn down"

    s3.delete_bucket(Bucket=stray)  # what an operator does (runbooks/leak-sweep-failed.md); the retry finishes
    ws = plane.wait_state(ws_id, Lifecycle.deleted, timeout=60)
    assert ws.last_error is None


def test_enterprise_silo_end_to_end(plane: Plane, kube: KubeClient, aws_cell: CloudCell) -> None:
    ws_id = new_workspace(plane, f"ent{uuid.uuid4().hex[:6]}", Tier.enterprise)
    ws = _provision(plane, ws_id, Lifecycle.active)
    assert ws.cell is None and ws.endpoint_url == f"https://{ws.slug}.{SILO_DOMAIN}"
    assert {c["type"] for c in ws.conditions} == CONDITIONS | {
        "KeyReady",
        "ClusterReady",
        "CertificateReady",
        "IngressReady",
    }
    assert aws_resources(ws_id) == EXPECTED_AWS[Tier.enterprise]
    assert kube_objects(kube, ws_id) == EXPECTED_KUBE[Tier.enterprise]
    names = workspace_names("test", ws_id)
    tags = workspace_tags(ws_id, ws.organization_id, "enterprise", None)

    key_arn = _assert_key(names.kms_alias, tags)
    _assert_bucket(names.bucket, key_arn, tags)
    silo = silo_providers(get_settings(), Aws())
    spec = records.load(ws_id)
    assert spec is not None
    _assert_database(silo, spec.spec, names.rds_instance, names.secret, key_arn, tags, aws_cell)
    _assert_cluster(names.eks_cluster, names.eks_nodegroup, key_arn, tags, aws_cell)
    oidc_provider = silo_oidc_provider(names.eks_cluster)
    assert ws.outputs["oidc_provider_arn"] == oidc_provider
    _assert_workload_role(names.app_role, oidc_provider, names.namespace, tags)
    _assert_attached(names.app_role, bucket_policy(f"arn:aws:s3:::{names.bucket}", key_arn), tags)
    ns = names.namespace
    address = ws.outputs["load_balancer_hostname"]
    assert address.endswith(f".elb.{REGION}.amazonaws.com") and ws.outputs["ingress_hostname"] == address
    _assert_record(aws_cell.silo_zone_id, f"{ws.slug}.{SILO_DOMAIN}", address)
    env = _workload(kube, ns, ws.slug, SILO_DOMAIN, tags, ws.outputs["workload_role_arn"])
    assert env["WS_S3_BUCKET"] == names.bucket and env["WS_S3_KMS_KEY_ID"] == key_arn
    assert env["WS_DATABASE_URL"] == silo.database.connection_url(spec.spec)
    hpa = _get(kube, "autoscaling/v2beta2", "HorizontalPodAutoscaler", "workspace-server", ns)
    assert hpa["spec"]["minReplicas"] == 2

    validation = (aws_cell.silo_zone_id, ws.outputs["certificate_validation_name"])
    _delete(plane, kube, ws_id, [(aws_cell.silo_zone_id, f"{ws.slug}.{SILO_DOMAIN}"), validation])
    _assert_gone(names.app_role, ws.outputs["storage_policy_arn"], oidc_provider)
    [snapshot] = boto3.client("rds").describe_db_snapshots(DBSnapshotIdentifier=f"{names.rds_instance}-final")[
        "DBSnapshots"
    ]
    assert snapshot["Encrypted"] is True and snapshot["DBInstanceIdentifier"] == names.rds_instance


def _provision(plane: Plane, ws_id: uuid.UUID, state: Lifecycle) -> Any:
    if not plane.workers:
        plane.start_worker()
    started = time.monotonic()
    defer_reconcile(ws_id, Cause.signup)
    ws = plane.wait_state(ws_id, state, timeout=90)
    print(f"{ws.tier.value} provisioned in {time.monotonic() - started:.1f}s")
    assert all(c["status"] == "True" for c in ws.conditions), ws.conditions
    assert {c["type"] for c in ws.conditions} >= CONDITIONS
    assert ws.reconcile_attempts == 0 and ws.last_error is None
    assert (ws.trial_ends_at is not None) == (state == Lifecycle.trialing)
    assert ws.initial_admin_password_hash is None, "the hash is forgotten once the rollout carrying it completed"
    assert set(ws.outputs["created"].values()) == {1}, ws.outputs["created"]
    return ws


def _delete(plane: Plane, kube: KubeClient, ws_id: uuid.UUID, dns: list[tuple[str, str]]) -> None:
    started = time.monotonic()
    plane.purge(ws_id)
    ws = plane.wait_state(ws_id, Lifecycle.deleted, timeout=90)
    print(f"deleted in {time.monotonic() - started:.1f}s")
    assert all(c["status"] == "False" for c in ws.conditions)
    assert LeakSweep(Aws(), REGION).leftovers_for(ws_id, dns) == []
    if ws.tier is Tier.enterprise:  # the tenant key outlives the silo while its final backup needs it
        assert aws_resources(ws_id) == {"kms key": 1}
        assert _kept_keys(ws_id) == ["backups"]
    else:
        assert aws_resources(ws_id) == {}
    assert kube_objects(kube, ws_id) == {}, "no Kubernetes object labelled with the workspace is left"


def _kept_keys(ws_id: uuid.UUID) -> list[str]:
    """What each live KMS key of the workspace is kept for (its ``canopy:kept-for`` tag); a key left kept has no
    alias."""
    kms = boto3.client("kms")
    kept = []
    for key in kms.list_keys()["Keys"]:
        tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key["KeyId"])["Tags"]}
        if tags.get(TAG_WORKSPACE) == str(ws_id) and resource_alive(key["KeyArn"]):
            assert kms.list_aliases(KeyId=key["KeyId"])["Aliases"] == []
            kept.append(tags.get(TAG_KEPT_FOR, ""))
    return kept


def _assert_gone(role: str, policy_arn: str, oidc_provider: str | None = None) -> None:
    """The workspace's role and storage policy (and a silo's OIDC provider) are deleted."""
    iam = boto3.client("iam")
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_role(RoleName=role)
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_policy(PolicyArn=policy_arn)
    if oidc_provider:
        with pytest.raises(iam.exceptions.NoSuchEntityException):
            iam.get_open_id_connect_provider(OpenIDConnectProviderArn=oidc_provider)


def _get(kube: KubeClient, api_version: str, kind: str, name: str, ns: str) -> dict[str, Any]:
    obj = kube.get(api_version, kind, name, ns)
    assert obj is not None, f"{kind} {ns}/{name} does not exist"
    return obj


def _workload(kube: KubeClient, ns: str, slug: str, domain: str, tags: dict[str, str], role_arn: str) -> dict[str, str]:
    """Assert the Deployment is rolled out, hardened, labelled and runs as the service account of the workspace's
    IAM role, the Ingress routes the name; the Secret's env."""
    deployment = _get(kube, "apps/v1", "Deployment", "workspace-server", ns)
    assert rollout_status(deployment).done
    labels = deployment["metadata"]["labels"]
    assert kubernetes_labels(tags).items() <= labels.items() and labels["app.kubernetes.io/managed-by"] == "canopy"
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == "workspace-server"
    account = _get(kube, "v1", "ServiceAccount", "workspace-server", ns)
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == role_arn
    assert account["automountServiceAccountToken"] is False
    assert kubernetes_labels(tags).items() <= account["metadata"]["labels"].items()
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    ingress = _get(kube, "networking.k8s.io/v1", "Ingress", "workspace-server", ns)
    assert ingress["spec"]["rules"][0]["host"] == f"{slug}.{domain}"
    return _secret_without_admin(kube, ns)


def _secret_without_admin(kube: KubeClient, ns: str) -> dict[str, str]:
    """The server's Secret env once the handover has dropped the initial admin from it."""
    deadline = time.monotonic() + 15
    while True:
        secret = _get(kube, "v1", "Secret", "workspace-server-secrets", ns)["data"]
        env = {k: base64.b64decode(v).decode() for k, v in secret.items()}
        if not [k for k in env if k.startswith("WS_INITIAL_ADMIN_")]:
            return env
        assert time.monotonic() < deadline, "the initial admin stays in the Secret after the handover"
        time.sleep(0.2)


def _assert_record(zone_id: str, name: str, target: str) -> None:
    records_ = boto3.client("route53").list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    [record] = [r for r in records_ if r["Name"].rstrip(".") == name]
    assert record["Type"] == "CNAME" and record["ResourceRecords"] == [{"Value": target}]
