"""KubernetesCompute against the real test cluster (kube-apiserver 1.20, controllers, test kubelet)."""

from __future__ import annotations

import base64
import os
import shlex
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from control_plane.kube.client import KubeApiError, KubeClient
from control_plane.kube.deployer import KubernetesCompute
from control_plane.kube.eks import ClusterResolver, workspace_cluster
from control_plane.kube.render import InitialAdmin
from control_plane.kube.rollout import RolloutError, rollout_status
from control_plane.providers.base import WorkspaceSpec
from tests.harness.kubernetes import TestCluster
from tests.hibernation.conftest import runbook_commands
from tests.kube.factories import IMAGE, deploy_settings, server_config, workspace

pytestmark = pytest.mark.slow

POOLED_OBJECTS = [
    "namespace {ns}",
    "resourcequota {ns}/workspace-quota",
    "limitrange {ns}/workspace-limits",
    "networkpolicy {ns}/default-deny",
    "networkpolicy {ns}/workspace-server",
    "serviceaccount {ns}/workspace-server",
    "secret {ns}/workspace-server-secrets",
    "configmap {ns}/workspace-server-config",
    "deployment {ns}/workspace-server",
    "service {ns}/workspace-server",
    "ingress {ns}/workspace-server",
    "poddisruptionbudget {ns}/workspace-server",
]


@pytest.fixture(scope="module")
def resolver(kube_cluster: TestCluster) -> Iterator[ClusterResolver]:
    """Every EKS cluster name resolves to the test cluster (as CANOPY_KUBECONFIG_OVERRIDES={"*": ...} would)."""
    resolver = ClusterResolver({"*": str(kube_cluster.kubeconfig)})
    yield resolver
    resolver.close()


@pytest.fixture
def kube(resolver: ClusterResolver) -> KubeClient:
    return resolver.client("canopy-cell-c1")


@pytest.fixture
def make_compute(resolver: ClusterResolver, kube: KubeClient) -> Iterator[Callable[..., KubernetesCompute]]:
    """``make_compute(**settings)``; every namespace a test deployed into is deleted afterwards (not waited for)."""
    namespaces: set[str] = set()

    def make(**changes: Any) -> KubernetesCompute:
        settings = deploy_settings(**changes)

        def client_for(ws: WorkspaceSpec) -> KubeClient:
            namespaces.add(f"ws-{ws.short_id}")
            return resolver.client(workspace_cluster(settings.env, ws))

        return KubernetesCompute(settings, client_for)

    yield make
    for ns in namespaces:
        kube.delete({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})


def get(kube: KubeClient, api_version: str, kind: str, name: str, ns: str | None = None) -> dict[str, Any]:
    obj = kube.get(api_version, kind, name, ns)
    assert obj is not None, f"{kind} {ns}/{name} does not exist"
    return obj


def versions_of(kube: KubeClient, ws: WorkspaceSpec) -> dict[str, str]:
    """resourceVersion of every object we apply for ``ws`` (not the pods and ReplicaSets controllers own)."""
    kinds = [
        ("v1", "Namespace"), ("v1", "ResourceQuota"), ("v1", "LimitRange"), ("networking.k8s.io/v1", "NetworkPolicy"),
        ("v1", "ServiceAccount"), ("v1", "Secret"), ("v1", "ConfigMap"), ("apps/v1", "Deployment"), ("v1", "Service"),
        ("networking.k8s.io/v1", "Ingress"), ("policy/v1beta1", "PodDisruptionBudget"),
        ("autoscaling/v2beta2", "HorizontalPodAutoscaler"),
    ]  # fmt: skip
    found = kube.list_by_labels(f"canopy/workspace={ws.id}", kinds)
    return {f"{o['kind']}/{o['metadata']['name']}": o["metadata"]["resourceVersion"] for o in found}


def settle(kube: KubeClient, ns: str) -> None:
    """Wait until the controllers have written their last status: the deployment's after its rollout, and the
    quota's usage (computed once; then only pod admissions and the 5-minute resync change it)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        deployment = get(kube, "apps/v1", "Deployment", "workspace-server", ns)
        conditions = {c["type"]: c["reason"] for c in deployment["status"].get("conditions", [])}
        quota = get(kube, "v1", "ResourceQuota", "workspace-quota", ns).get("status", {})
        if (
            rollout_status(deployment).done
            and conditions.get("Progressing") == "NewReplicaSetAvailable"
            and "used" in quota
        ):
            return
        time.sleep(0.2)
    raise AssertionError(f"deployment in {ns} did not settle")


def test_pooled_workspace_is_deployed_and_rolled_out(
    make_compute: Callable[..., KubernetesCompute], kube: KubeClient
) -> None:
    ws = workspace()
    ns = f"ws-{ws.short_id}"
    admin = InitialAdmin(email="ada@acme.test", username="ada", password_hash="$argon2id$v=19$m=65536,t=3,p=4$x$y")
    ensured = make_compute().ensure(ws, server_config(initial_admin=admin))

    assert list(ensured.created) == [line.format(ns=ns) for line in POOLED_OBJECTS]
    assert ensured.outputs == {
        "namespace": ns,
        "deployment": "workspace-server",
        "internal_url": f"http://workspace-server.{ns}.svc.cluster.local",
        "observed_image": IMAGE,
    }
    namespace = get(kube, "v1", "Namespace", ns)
    assert namespace["metadata"]["labels"]["canopy/workspace"] == str(ws.id)
    assert namespace["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "canopy"
    quota = get(kube, "v1", "ResourceQuota", "workspace-quota", ns)
    assert quota["spec"]["hard"]["pods"] == "20" and quota["spec"]["hard"]["limits.memory"] == "8Gi"
    limits = get(kube, "v1", "LimitRange", "workspace-limits", ns)["spec"]["limits"][0]
    assert limits["defaultRequest"] == {"cpu": "100m", "memory": "256Mi"}
    deny = get(kube, "networking.k8s.io/v1", "NetworkPolicy", "default-deny", ns)["spec"]
    assert deny["podSelector"] == {} and deny["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in deny
    allow = get(kube, "networking.k8s.io/v1", "NetworkPolicy", "workspace-server", ns)["spec"]
    assert allow["egress"][1]["to"] == [{"ipBlock": {"cidr": "10.10.0.0/16"}}]

    secret = get(kube, "v1", "Secret", "workspace-server-secrets", ns)["data"]
    assert base64.b64decode(secret["WS_DATABASE_URL"]).decode() == server_config().database_url
    assert base64.b64decode(secret["WS_INITIAL_ADMIN_PASSWORD_HASH"]).decode() == admin.password_hash
    config = get(kube, "v1", "ConfigMap", "workspace-server-config", ns)["data"]
    assert config["WS_TEAM_NAME"] == "acme" and "WS_DATABASE_URL" not in config

    deployment = get(kube, "apps/v1", "Deployment", "workspace-server", ns)
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == IMAGE and deployment["spec"]["replicas"] == 1
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["readinessProbe"]["httpGet"]["path"] == "/api/v4/system/ping"
    assert deployment["status"]["readyReplicas"] == 1 and rollout_status(deployment).done
    pods = kube.list_kind("v1", "Pod", ns, f"canopy/workspace={ws.id}")
    assert [p["status"]["phase"] for p in pods] == ["Running"]
    assert pods[0]["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}

    service = get(kube, "v1", "Service", "workspace-server", ns)["spec"]
    assert service["selector"] == {"app.kubernetes.io/name": "workspace-server", "canopy/workspace": str(ws.id)}
    ingress = get(kube, "networking.k8s.io/v1", "Ingress", "workspace-server", ns)["spec"]
    assert ingress["rules"][0]["host"] == "acme.canopy.test" and ingress["ingressClassName"] == "nginx"
    pdb = get(kube, "policy/v1beta1", "PodDisruptionBudget", "workspace-server", ns)
    assert pdb["spec"]["minAvailable"] == 1
    assert kube.list_kind("autoscaling/v2beta2", "HorizontalPodAutoscaler", ns) == []


def test_ensure_again_creates_and_changes_nothing(
    make_compute: Callable[..., KubernetesCompute], kube: KubeClient
) -> None:
    compute, ws = make_compute(), workspace()
    ns = f"ws-{ws.short_id}"
    compute.ensure(ws, server_config())
    settle(kube, ns)
    before = versions_of(kube, ws)
    assert len(before) == 12
    time.sleep(1.1)  # managedFields times have 1 s resolution: an apply that is not a no-op shows from now on

    again = compute.ensure(ws, server_config())

    assert again.created == ()
    assert versions_of(kube, ws) == before


def test_image_and_config_changes_roll_out(make_compute: Callable[..., KubernetesCompute], kube: KubeClient) -> None:
    compute, ws = make_compute(), workspace()
    ns = f"ws-{ws.short_id}"
    compute.ensure(ws, server_config())
    first = get(kube, "apps/v1", "Deployment", "workspace-server", ns)

    upgraded = compute.ensure(ws, server_config(image="registry.test/canopy/workspace-server:1.1.0"))

    assert upgraded.created == () and upgraded.outputs["observed_image"].endswith(":1.1.0")
    second = get(kube, "apps/v1", "Deployment", "workspace-server", ns)
    assert second["metadata"]["generation"] == first["metadata"]["generation"] + 1
    assert rollout_status(second).done
    replica_sets = {rs["spec"]["template"]["spec"]["containers"][0]["image"]: rs["status"].get("replicas", 0)
                    for rs in kube.list_kind("apps/v1", "ReplicaSet", ns)}  # fmt: skip
    assert replica_sets == {IMAGE: 0, "registry.test/canopy/workspace-server:1.1.0": 1}

    compute.ensure(
        ws, server_config(image="registry.test/canopy/workspace-server:1.1.0", database_url="postgresql://b")
    )
    third = get(kube, "apps/v1", "Deployment", "workspace-server", ns)
    assert third["metadata"]["generation"] == second["metadata"]["generation"] + 1  # the checksum annotation
    assert len(kube.list_kind("apps/v1", "ReplicaSet", ns)) == 3


def test_a_broken_image_times_out_naming_the_reason(make_compute: Callable[..., KubernetesCompute]) -> None:
    compute, ws = make_compute(rollout_timeout=3.0), workspace()
    compute.ensure(ws, server_config())
    started = time.monotonic()
    with pytest.raises(RolloutError) as failure:
        compute.ensure(ws, server_config(image="registry.test/canopy/workspace-server:broken"))
    message = str(failure.value)
    assert 3 <= time.monotonic() - started < 10
    assert f"rollout of ws-{ws.short_id}/workspace-server not complete after 3s" in message
    assert "0 of 1 updated replicas are available" in message or "old replicas are pending termination" in message
    assert "CrashLoopBackOff" in message


def test_a_rollout_past_its_progress_deadline_fails(make_compute: Callable[..., KubernetesCompute]) -> None:
    compute, ws = make_compute(progress_deadline_seconds=2, rollout_timeout=60.0), workspace()
    started = time.monotonic()
    with pytest.raises(RolloutError, match='failed: deployment "workspace-server" exceeded its progress deadline'):
        compute.ensure(ws, server_config(image="registry.test/canopy/workspace-server:broken"))
    assert time.monotonic() - started < 30


def test_enterprise_gets_an_hpa_of_the_discovered_version(
    make_compute: Callable[..., KubernetesCompute], kube: KubeClient
) -> None:
    ws = workspace("enterprise")
    ns = f"ws-{ws.short_id}"
    ensured = make_compute().ensure(ws, server_config())
    assert f"horizontalpodautoscaler {ns}/workspace-server" in ensured.created
    assert not [line for line in ensured.created if "quota" in line or "networkpolicy" in line]
    hpa = get(kube, "autoscaling/v2beta2", "HorizontalPodAutoscaler", "workspace-server", ns)
    assert hpa["spec"]["minReplicas"] == 2 and hpa["spec"]["maxReplicas"] == 6
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    assert get(kube, "apps/v1", "Deployment", "workspace-server", ns)["status"]["readyReplicas"] == 2


@pytest.mark.parametrize("tier", ["professional", "enterprise"])
def test_stop_scales_to_zero_keeps_the_secret_and_ensure_wakes(
    make_compute: Callable[..., KubernetesCompute], kube: KubeClient, tier: str
) -> None:
    compute, ws = make_compute(), workspace(tier)
    ns = f"ws-{ws.short_id}"
    compute.ensure(ws, server_config())

    compute.stop(ws)

    deployment = get(kube, "apps/v1", "Deployment", "workspace-server", ns)
    assert deployment["spec"]["replicas"] == 0 and not deployment["status"].get("replicas")
    assert kube.list_kind("v1", "Pod", ns) == []
    assert get(kube, "v1", "Secret", "workspace-server-secrets", ns)
    compute.stop(ws)  # idempotent

    woken = compute.ensure(ws, server_config())
    assert woken.created == ()
    deployment = get(kube, "apps/v1", "Deployment", "workspace-server", ns)
    assert deployment["status"]["readyReplicas"] == (1 if tier == "professional" else 2)


def runbook_kubectl(kube_cluster: TestCluster, ns: str) -> list[str]:
    """The Kubernetes checks of runbooks/hibernation-does-not-wake.md, run as written against the test cluster."""
    outputs = []
    for command in [c for c in runbook_commands() if c.startswith("kubectl ")]:
        argv = shlex.split(command.replace("<namespace>", ns))
        env = os.environ | {"KUBECONFIG": str(kube_cluster.kubeconfig)}
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (command, done.stderr)
        outputs.append(done.stdout.strip())
    return outputs


@pytest.mark.parametrize("tier", ["professional", "enterprise"])
def test_a_sleeping_workspace_is_routed_to_the_wake_route_until_its_pods_are_back(
    make_compute: Callable[..., KubernetesCompute], kube: KubeClient, kube_cluster: TestCluster, tier: str
) -> None:
    compute, ws = make_compute(wake_backend="canopy-api.canopy.svc.cluster.local:8000"), workspace(tier)
    ns = f"ws-{ws.short_id}"
    ensured = compute.ensure(ws, server_config())
    assert f"service {ns}/canopy-wake" in ensured.created
    assert runbook_kubectl(kube_cluster, ns) == ["workspace-server", "canopy-api.canopy.svc.cluster.local"]
    # As if deployed before the wake backend was set: hibernation makes the wake service first.
    kube.delete({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "canopy-wake", "namespace": ns}})

    compute.stop(ws)
    assert runbook_kubectl(kube_cluster, ns) == ["canopy-wake", "canopy-api.canopy.svc.cluster.local"]
    ingress = get(kube, "networking.k8s.io/v1", "Ingress", "workspace-server", ns)
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/rewrite-target"] == "/wake/acme/$1"
    assert get(kube, "apps/v1", "Deployment", "workspace-server", ns)["spec"]["replicas"] == 0
    assert kube.list_kind("v1", "Pod", ns) == []

    woken = compute.ensure(ws, server_config())
    assert woken.created == ()
    assert runbook_kubectl(kube_cluster, ns)[0] == "workspace-server"
    ingress = get(kube, "networking.k8s.io/v1", "Ingress", "workspace-server", ns)
    assert "annotations" not in ingress["metadata"], "the wake route's annotations are gone"
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["path"] == "/"
    deployment = get(kube, "apps/v1", "Deployment", "workspace-server", ns)
    assert deployment["status"]["readyReplicas"] == (1 if tier == "professional" else 2)


@pytest.mark.parametrize("tier", ["professional", "enterprise"])
def test_teardown_leaves_nothing(make_compute: Callable[..., KubernetesCompute], kube: KubeClient, tier: str) -> None:
    compute, ws = make_compute(), workspace(tier)
    ns = f"ws-{ws.short_id}"
    compute.ensure(ws, server_config())
    found = compute.leftovers(ws)
    assert f"namespace {ns}" in found and f"deployment {ns}/workspace-server" in found
    assert any(line.startswith(f"pod {ns}/workspace-server-") for line in found)
    assert any(line.startswith(f"replicaset {ns}/workspace-server-") for line in found)

    compute.teardown(ws)

    assert compute.leftovers(ws) == []
    assert kube.get("v1", "Namespace", ns) is None
    compute.teardown(ws)  # idempotent


def test_a_workspace_never_deployed_has_nothing_to_stop_or_sweep(
    make_compute: Callable[..., KubernetesCompute],
) -> None:
    compute, ws = make_compute(), workspace()
    compute.stop(ws)
    assert compute.leftovers(ws) == []


def test_read_modify_write_retries_on_conflict(kube: KubeClient, kube_namespace: str) -> None:
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "counter", "namespace": kube_namespace},
        "data": {"seen": "0"},
    }
    kube.apply(config_map)
    reads: list[str] = []

    def mutate(current: dict[str, Any]) -> None:
        reads.append(current["metadata"]["resourceVersion"])
        if len(reads) == 1:  # someone else writes between our read and our write
            kube.apply({**config_map, "data": {"seen": "0", "other": "yes"}})
        current["data"]["seen"] = str(int(current["data"]["seen"]) + 1)

    updated = kube.update(config_map, mutate)

    assert len(reads) == 2 and reads[0] != reads[1]
    assert updated["data"] == {"seen": "1", "other": "yes"}

    def always_conflicting(current: dict[str, Any]) -> None:
        kube.apply({**config_map, "data": {"seen": current["metadata"]["resourceVersion"]}})

    with pytest.raises(KubeApiError) as conflict:
        kube.update(config_map, always_conflicting, attempts=3)
    assert conflict.value.status == 409
