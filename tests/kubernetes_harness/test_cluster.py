"""The real Kubernetes test cluster: apply, rollouts, the test kubelet, quotas, namespace cascade, discovery."""

from __future__ import annotations

import copy
import time
import uuid
from typing import Any

import kubernetes.client
import kubernetes.dynamic
import pytest
from kubernetes.client import ApiClient, ApiException, AppsV1Api, CoreV1Api

from tests.harness.kubernetes import TestCluster
from tests.harness.rollout import RolloutFailed, rollout_status, wait_for_rollout
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

APPLY = "application/apply-patch+yaml"


def deployment(
    name: str,
    namespace: str,
    image: str = "registry.local/web:1",
    replicas: int = 2,
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A Deployment manifest (as a dict, the way the control plane renders them)."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            **spec,
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": annotations or {}},
                "spec": {"containers": [{"name": "main", "image": image}]},
            },
        },
    }


def apply_deployment(apps: AppsV1Api, manifest: dict[str, Any], manager: str = "canopy", force: bool = False) -> Any:
    """Server-side apply of a Deployment on 1.20 with the official client.

    The typed ``patch_*`` methods accept ``_content_type``: with ``application/apply-patch+yaml`` and a
    ``field_manager`` the dict body is sent as JSON (valid YAML) and the apiserver treats it as an apply
    (kubernetes client 37; ``DynamicClient.server_side_apply`` works too, see test_dynamic_client_apply).
    """
    meta = manifest["metadata"]
    return apps.patch_namespaced_deployment(
        meta["name"], meta["namespace"], manifest, field_manager=manager, force=force or None, _content_type=APPLY
    )


def test_cluster_is_v1_20_with_a_ready_node(kube_cluster: TestCluster, kube_api_client: ApiClient) -> None:
    version = kubernetes.client.VersionApi(kube_api_client).get_code()
    assert version.git_version == "v1.20.2"
    nodes = CoreV1Api(kube_api_client).list_node().items
    assert [n.metadata.name for n in nodes] == [kube_cluster.node_name]
    ready = {c.type: c.status for c in nodes[0].status.conditions}
    assert ready["Ready"] == "True"
    assert kube_cluster.kubeconfig.is_file()
    rss = kube_cluster.rss_bytes()
    print(
        f"startup {kube_cluster.startup_seconds:.1f}s {kube_cluster.timings}; "
        f"RSS MiB { {k: v >> 20 for k, v in rss.items()} } total {sum(rss.values()) >> 20}"
    )
    assert set(rss) == {"etcd", "kube-apiserver", "kube-controller-manager", "test-kubelet"}


def test_discovery_serves_the_groups_the_control_plane_uses(kube_api_client: ApiClient) -> None:
    groups = {
        g.name: [v.version for v in g.versions]
        for g in kubernetes.client.ApisApi(kube_api_client).get_api_versions().groups
    }
    print({name: groups.get(name) for name in ("apps", "policy", "autoscaling", "networking.k8s.io")})
    assert "v1" in groups["apps"]
    assert "v1beta1" in groups["policy"]  # PodDisruptionBudget: policy/v1 arrives in 1.21
    assert "v2beta2" in groups["autoscaling"]  # HPA with resource metrics: autoscaling/v2 arrives in 1.23
    assert "v1" in groups["networking.k8s.io"]  # Ingress and NetworkPolicy
    # The client (37) has no typed policy/v1beta1 or autoscaling/v2beta2 APIs any more: ask the server directly.
    for group_version, kind in (
        ("policy/v1beta1", "poddisruptionbudgets"),
        ("autoscaling/v2beta2", "horizontalpodautoscalers"),
        ("networking.k8s.io/v1", "ingresses"),
        ("networking.k8s.io/v1", "networkpolicies"),
    ):
        response = kube_api_client.call_api(
            *kube_api_client.param_serialize("GET", f"/apis/{group_version}", auth_settings=["BearerToken"])
        )
        response.read()
        assert f'"name":"{kind}"' in response.data.decode(), (group_version, kind)


def test_apply_rolls_out_and_a_changed_image_rolls_out_again(kube_api_client: ApiClient, kube_namespace: str) -> None:
    apps, core = AppsV1Api(kube_api_client), CoreV1Api(kube_api_client)
    manifest = deployment("web", kube_namespace, image="registry.local/web:1")
    applied = apply_deployment(apps, manifest)
    assert [(f.manager, f.operation) for f in applied.metadata.managed_fields] == [("canopy", "Apply")]
    done = wait_for_rollout(apps, kube_namespace, "web", timeout=60)
    assert (done.status.updated_replicas, done.status.available_replicas) == (2, 2)
    pods = core.list_namespaced_pod(kube_namespace, label_selector="app=web").items
    assert len(pods) == 2
    assert all(p.spec.node_name and p.status.phase == "Running" for p in pods)

    changed = copy.deepcopy(manifest)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.local/web:2"
    assert apply_deployment(apps, changed).metadata.generation == 2
    done = wait_for_rollout(apps, kube_namespace, "web", timeout=60)
    assert done.status.observed_generation == 2
    wait_until(
        "old pods to be gone",
        lambda: (
            sorted(
                c.image
                for p in core.list_namespaced_pod(kube_namespace, label_selector="app=web").items
                for c in p.spec.containers
            )
            == ["registry.local/web:2"] * 2
        ),
    )
    sets = apps.list_namespaced_replica_set(kube_namespace, label_selector="app=web").items
    assert sorted((rs.spec.template.spec.containers[0].image, rs.spec.replicas) for rs in sets) == [
        ("registry.local/web:1", 0),
        ("registry.local/web:2", 2),
    ]


def test_apply_conflicts_between_field_managers(kube_api_client: ApiClient, kube_namespace: str) -> None:
    apps = AppsV1Api(kube_api_client)
    apply_deployment(apps, deployment("api", kube_namespace, image="registry.local/api:1", replicas=1))
    theirs = deployment("api", kube_namespace, image="registry.local/api:hotfix", replicas=1)
    with pytest.raises(ApiException) as conflict:
        apply_deployment(apps, theirs, manager="someone-else")
    assert conflict.value.status == 409
    forced = apply_deployment(apps, theirs, manager="someone-else", force=True)
    assert forced.spec.template.spec.containers[0].image == "registry.local/api:hotfix"


def test_dynamic_client_apply(kube_cluster: TestCluster, kube_namespace: str) -> None:
    dynamic = kube_cluster.dynamic_client()
    configmaps = dynamic.resources.get(api_version="v1", kind="ConfigMap")
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": kube_namespace},
        "data": {"a": "1"},
    }
    dynamic.server_side_apply(configmaps, body=body, field_manager="canopy")
    body["data"] = {"b": "2"}  # apply semantics: fields the manager no longer sets are removed
    applied = dynamic.server_side_apply(configmaps, body=body, field_manager="canopy")
    assert dict(applied.data) == {"b": "2"}
    assert isinstance(dynamic, kubernetes.dynamic.DynamicClient)


def test_failing_pods_keep_a_deployment_unavailable(kube_api_client: ApiClient, kube_namespace: str) -> None:
    apps, core = AppsV1Api(kube_api_client), CoreV1Api(kube_api_client)
    marked = deployment(
        "marked", kube_namespace, replicas=1, annotations={"canopy.test/kubelet": "fail"}, progressDeadlineSeconds=3
    )
    apply_deployment(apps, marked)

    def crash_looping() -> bool:
        pods = core.list_namespaced_pod(kube_namespace, label_selector="app=marked").items
        statuses = [s for p in pods for s in p.status.container_statuses or []]
        return bool(statuses) and all(
            s.state.waiting and s.state.waiting.reason == "CrashLoopBackOff" for s in statuses
        )

    wait_until("the marked pod to crash-loop", crash_looping)
    status = apps.read_namespaced_deployment("marked", kube_namespace).status
    assert not status.available_replicas and status.unavailable_replicas == 1
    assert {c.type: c.status for c in status.conditions}["Available"] == "False"
    # The real deployment controller marks the rollout failed once the progress deadline passes.
    with pytest.raises(RolloutFailed):
        wait_for_rollout(apps, kube_namespace, "marked", timeout=30)

    # A broken image in an update: the new pod never gets ready and the old ones keep serving.
    healthy = deployment("svc", kube_namespace, image="registry.local/svc:1", replicas=2)
    apply_deployment(apps, healthy)
    wait_for_rollout(apps, kube_namespace, "svc", timeout=60)
    broken = copy.deepcopy(healthy)
    broken["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.local/svc:broken"
    apply_deployment(apps, broken)
    with pytest.raises(TimeoutError, match=r"updated replicas are available|new replicas have been updated"):
        wait_for_rollout(apps, kube_namespace, "svc", timeout=4)
    status = apps.read_namespaced_deployment("svc", kube_namespace).status
    assert (status.available_replicas, status.updated_replicas) == (2, 1)
    assert rollout_status(apps.read_namespaced_deployment("svc", kube_namespace))[0] is False


def test_kubelet_runs_bare_pods_and_completes_marked_ones(kube_api_client: ApiClient, kube_namespace: str) -> None:
    core = CoreV1Api(kube_api_client)

    def pod(name: str, mode: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "annotations": {"canopy.test/kubelet": mode}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "registry.local/x:1"}]},
        }

    core.create_namespaced_pod(kube_namespace, pod("runs", "run"))
    core.create_namespaced_pod(kube_namespace, pod("completes", "succeed"))
    core.create_namespaced_pod(kube_namespace, pod("waits", "pending"))

    def phase(name: str) -> str:
        return str(core.read_namespaced_pod(name, kube_namespace).status.phase)

    wait_until("pods to reach their phases", lambda: (phase("runs"), phase("completes")) == ("Running", "Succeeded"))
    running = core.read_namespaced_pod("runs", kube_namespace)
    assert running.status.pod_ip and running.status.container_statuses[0].container_id
    waiting = core.read_namespaced_pod("waits", kube_namespace)
    assert waiting.spec.node_name and waiting.status.phase == "Pending"
    core.delete_namespaced_pod("runs", kube_namespace)  # graceful: the kubelet must finish it
    wait_until(
        "the deleted pod to be gone",
        lambda: (
            [p.metadata.name for p in core.list_namespaced_pod(kube_namespace).items if p.metadata.name == "runs"] == []
        ),
        timeout=15,
    )


def test_resource_quota_rejects_creation_beyond_it(kube_api_client: ApiClient, kube_namespace: str) -> None:
    core = CoreV1Api(kube_api_client)
    core.create_namespaced_resource_quota(
        kube_namespace,
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "small"},
            "spec": {"hard": {"services": "1", "pods": "1"}},
        },
    )
    wait_until(
        "the quota controller to compute usage",
        lambda: core.read_namespaced_resource_quota("small", kube_namespace).status.used is not None,
    )

    def service(name: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80}]},
        }

    core.create_namespaced_service(kube_namespace, service("first"))
    with pytest.raises(ApiException) as rejected:
        core.create_namespaced_service(kube_namespace, service("second"))
    assert rejected.value.status == 403
    assert "exceeded quota" in str(rejected.value.body)

    # Through a controller: only one of two replicas gets created.
    apps = AppsV1Api(kube_api_client)
    apply_deployment(apps, deployment("capped", kube_namespace, replicas=2))

    def replica_failure() -> bool:
        sets = apps.list_namespaced_replica_set(kube_namespace, label_selector="app=capped").items
        return bool(sets) and any(c.type == "ReplicaFailure" for c in sets[0].status.conditions or [])

    wait_until("the replica set to report ReplicaFailure", replica_failure)
    assert len(core.list_namespaced_pod(kube_namespace, label_selector="app=capped").items) == 1


def test_limit_range_defaults_container_resources(kube_api_client: ApiClient, kube_namespace: str) -> None:
    core = CoreV1Api(kube_api_client)
    core.create_namespaced_limit_range(
        kube_namespace,
        {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": {"name": "defaults"},
            "spec": {
                "limits": [{"type": "Container", "default": {"memory": "256Mi"}, "defaultRequest": {"memory": "64Mi"}}]
            },
        },
    )
    created = core.create_namespaced_pod(
        kube_namespace,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "main", "image": "registry.local/x:1"}]},
        },
    )
    resources = created.spec.containers[0].resources
    assert (resources.limits["memory"], resources.requests["memory"]) == ("256Mi", "64Mi")


def test_namespace_deletion_cascades(kube_api_client: ApiClient) -> None:
    core, apps = CoreV1Api(kube_api_client), AppsV1Api(kube_api_client)
    ns = f"gone-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    core.create_namespaced_config_map(
        ns, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}
    )
    core.create_namespaced_secret(
        ns, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"k": "v"}}
    )
    apply_deployment(apps, deployment("web", ns))
    wait_for_rollout(apps, ns, "web", timeout=60)

    started = time.monotonic()
    core.delete_namespace(ns)

    def namespace_gone() -> bool:
        try:
            core.read_namespace(ns)
        except ApiException as e:
            if e.status == 404:
                return True
            raise
        return False

    wait_until("the namespace to be deleted", namespace_gone, timeout=90)
    print(f"namespace deleted in {time.monotonic() - started:.1f}s")
    assert core.list_namespaced_pod(ns).items == []
    assert core.list_namespaced_config_map(ns).items == []
    assert apps.list_namespaced_deployment(ns).items == []
    assert apps.list_namespaced_replica_set(ns).items == []
