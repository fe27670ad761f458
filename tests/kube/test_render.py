"""Rendering of a workspace's Kubernetes objects: pure data, no cluster."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from control_plane.kube.render import (
    CHECKSUM_ANNOTATION,
    ApiVersions,
    InitialAdmin,
    S3Config,
    choose_api_versions,
    kube_server_config,
    managed_kinds,
    render_hpa,
    render_ingress,
    render_workspace,
)
from control_plane.providers.base import ServerConfig
from tests.kube.factories import IMAGE, deploy_settings, server_config, workspace

KUBE_1_20 = {"networking.k8s.io": ["v1", "v1beta1"], "policy": ["v1beta1"], "autoscaling": ["v1", "v2beta1", "v2beta2"]}
KUBE_1_30 = {"networking.k8s.io": ["v1"], "policy": ["v1"], "autoscaling": ["v2", "v1"]}
SETTINGS = deploy_settings()
POOLED = workspace("professional")
ENTERPRISE = workspace("enterprise")


def discovery(groups: dict[str, list[str]]) -> Any:
    return lambda group: groups.get(group, [])


def render(ws: Any = POOLED, config: Any = None, versions: ApiVersions | None = None) -> dict[str, dict[str, Any]]:
    """The rendered objects by ``kind/name``."""
    objects = render_workspace(
        ws, config or server_config(), SETTINGS, versions or choose_api_versions(discovery(KUBE_1_20)), 1
    )
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in objects}


def pod_spec(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = objects["Deployment/workspace-server"]["spec"]["template"]["spec"]
    return spec


def decoded(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def test_pooled_workspace_objects_in_apply_order() -> None:
    objects = render_workspace(POOLED, server_config(), SETTINGS, ApiVersions(), 1)
    assert [f"{o['kind']}/{o['metadata']['name']}" for o in objects] == [
        f"Namespace/ws-{POOLED.short_id}",
        "ResourceQuota/workspace-quota",
        "LimitRange/workspace-limits",
        "NetworkPolicy/default-deny",
        "NetworkPolicy/workspace-server",
        "ServiceAccount/workspace-server",
        "Secret/workspace-server-secrets",
        "ConfigMap/workspace-server-config",
        "Deployment/workspace-server",
        "Service/workspace-server",
        "Ingress/workspace-server",
        "PodDisruptionBudget/workspace-server",
    ]
    assert {o["metadata"].get("namespace") for o in objects[1:]} == {f"ws-{POOLED.short_id}"}


def test_enterprise_has_an_hpa_and_no_namespace_guardrails() -> None:
    kinds = [o["kind"] for o in render_workspace(ENTERPRISE, server_config(), SETTINGS, ApiVersions(), 2)]
    assert kinds == [
        "Namespace", "ServiceAccount", "Secret", "ConfigMap", "Deployment", "Service", "Ingress", "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    ]  # fmt: skip


@pytest.mark.parametrize("ws", [POOLED, ENTERPRISE], ids=["pooled", "enterprise"])
def test_every_object_carries_the_workspace_labels(ws: Any) -> None:
    expected = {
        "canopy/workspace": str(ws.id),
        "canopy/org": str(ws.organization_id),
        "canopy/tier": ws.tier,
        "canopy/cell": ws.cell or "",
        "app.kubernetes.io/name": "workspace-server",
        "app.kubernetes.io/managed-by": "canopy",
    }
    objects = render(ws)
    for key, obj in objects.items():
        assert obj["metadata"]["labels"].items() >= expected.items(), key
    template_labels = objects["Deployment/workspace-server"]["spec"]["template"]["metadata"]["labels"]
    assert template_labels.items() >= expected.items()  # pods and ReplicaSets are found by the leak sweep


def test_namespace_enforces_the_restricted_pod_security_standard() -> None:
    labels = render()[f"Namespace/ws-{POOLED.short_id}"]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_pod_runs_non_root_with_a_read_only_root_and_no_capabilities() -> None:
    spec = pod_spec(render())
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 10001
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    (container,) = spec["containers"]
    assert container["securityContext"] == {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert spec["volumes"] == [{"name": "tmp", "emptyDir": {}}]


def test_container_probes_resources_and_environment() -> None:
    objects = render()
    (container,) = pod_spec(objects)["containers"]
    assert container["image"] == IMAGE
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/api/v4/system/ping", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 8065, "protocol": "TCP"}]
    assert container["resources"] == {
        "requests": {"cpu": "250m", "memory": "512Mi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    }
    assert container["envFrom"] == [
        {"secretRef": {"name": "workspace-server-secrets"}},
        {"configMapRef": {"name": "workspace-server-config"}},
    ]
    assert "Secret/workspace-server-secrets" in objects and "ConfigMap/workspace-server-config" in objects


def zero_paths(value: Any, path: str = "") -> list[str]:
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in zero_paths(item, f"{path}.{key}")]
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in zero_paths(item, f"{path}[{i}]")]
    return [path] if value == 0 and not isinstance(value, bool) else []


def test_no_zero_values_that_the_server_would_drop() -> None:
    """A zero in an omitempty field is dropped on write, so applying it again would not be a no-op."""
    for tier in ("professional", "enterprise"):
        for obj in render_workspace(workspace(tier), server_config(), SETTINGS, ApiVersions(), 0):
            allowed = [".spec.replicas", ".spec.strategy.rollingUpdate.maxUnavailable"]
            assert [p for p in zero_paths(obj) if p not in allowed] == [], obj["kind"]


def test_quota_and_limit_range() -> None:
    objects = render()
    hard = objects["ResourceQuota/workspace-quota"]["spec"]["hard"]
    assert hard["pods"] == "20" and hard["limits.memory"] == "8Gi" and hard["services.loadbalancers"] == "0"
    (limit,) = objects["LimitRange/workspace-limits"]["spec"]["limits"]
    assert limit["type"] == "Container" and limit["max"] == {"cpu": "2", "memory": "4Gi"}


def test_network_policies_deny_by_default_and_allow_narrowly() -> None:
    objects = render()
    deny = objects["NetworkPolicy/default-deny"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    allow = objects["NetworkPolicy/workspace-server"]["spec"]
    assert allow["podSelector"]["matchLabels"]["canopy/workspace"] == str(POOLED.id)
    (ingress,) = allow["ingress"]
    assert ingress["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]
    assert ingress["ports"] == [{"protocol": "TCP", "port": 8065}]
    dns, database, s3 = allow["egress"]
    assert dns["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    assert database == {"to": [{"ipBlock": {"cidr": "10.10.0.0/16"}}], "ports": [{"protocol": "TCP", "port": 5432}]}
    assert [t["ipBlock"]["cidr"] for t in s3["to"]] == ["10.20.0.0/24", "10.20.1.0/24"]
    assert s3["ports"] == [{"protocol": "TCP", "port": 443}]


def test_network_policy_ingress_namespace_is_configurable_and_empty_cidrs_are_left_out() -> None:
    settings = deploy_settings(ingress_namespace_labels={"team": "edge"}, database_cidrs=(), s3_cidrs=())
    objects = render_workspace(POOLED, server_config(), settings, ApiVersions(), 1)
    allow = next(o for o in objects if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "workspace-server")
    assert allow["spec"]["ingress"][0]["from"] == [{"namespaceSelector": {"matchLabels": {"team": "edge"}}}]
    assert len(allow["spec"]["egress"]) == 1  # DNS only


def test_secret_holds_credentials_s3_and_the_initial_admin_and_the_config_map_none() -> None:
    config = server_config(
        s3=S3Config(bucket="cell-bucket", prefix="workspaces/abc/", kms_key_id="arn:kms", region="eu-west-1"),
        initial_admin=InitialAdmin(email="ada@acme.test", username="ada", password_hash="$argon2id$v=19$x"),
    )
    objects = render(config=config)
    secret = decoded(objects["Secret/workspace-server-secrets"])
    assert secret == {
        "WS_DATABASE_URL": "postgresql://ws_abc:s3cret@db.internal:5432/ws_abc",
        "WS_CONTROL_TOKEN": "control-token-1",
        "WS_S3_BUCKET": "cell-bucket",
        "WS_S3_PREFIX": "workspaces/abc/",
        "WS_S3_KMS_KEY_ID": "arn:kms",
        "AWS_REGION": "eu-west-1",
        "WS_INITIAL_ADMIN_EMAIL": "ada@acme.test",
        "WS_INITIAL_ADMIN_USERNAME": "ada",
        "WS_INITIAL_ADMIN_PASSWORD_HASH": "$argon2id$v=19$x",
    }
    assert objects["Secret/workspace-server-secrets"]["type"] == "Opaque"
    env = objects["ConfigMap/workspace-server-config"]["data"]
    assert env["WS_PUBLIC_URL"] == "https://acme.canopy.test" and env["WS_LISTEN_PORT"] == "8065"
    assert not set(env.values()) & set(secret.values())


def checksum(config: Any) -> str:
    template = render(config=config)["Deployment/workspace-server"]["spec"]["template"]
    return str(template["metadata"]["annotations"][CHECKSUM_ANNOTATION])


def test_config_checksum_rolls_on_config_changes_but_not_on_forgetting_the_admin() -> None:
    base = checksum(server_config())
    assert len(base) == 64 and checksum(server_config()) == base
    assert checksum(server_config(database_url="postgresql://other")) != base
    assert checksum(server_config(site_name="Renamed")) != base
    admin = InitialAdmin(email="ada@acme.test", username="ada", password_hash="h")
    assert checksum(server_config(initial_admin=admin)) == base


def test_an_admin_arriving_after_the_start_rolls_the_pods_once() -> None:
    base = checksum(server_config())
    admin = InitialAdmin(email="ada@acme.test", username="ada", password_hash="h")
    arrived = checksum(server_config(initial_admin=admin, late_admin="ada@acme.test"))
    assert arrived != base, "the server creates the owner at the start this restart makes"
    assert checksum(server_config(late_admin="ada@acme.test")) == arrived, "forgetting the hash restarts nothing"


ROLE_ARN = "arn:aws:iam::123456789012:role/canopy/canopy-test-0123456789ab-app"


@pytest.mark.parametrize("ws", [POOLED, ENTERPRISE], ids=["pooled", "enterprise"])
def test_pods_run_as_a_service_account_annotated_with_the_workspace_role(ws: Any) -> None:
    objects = render(ws, server_config(workload_role_arn=ROLE_ARN))
    account = objects["ServiceAccount/workspace-server"]
    assert account["metadata"]["namespace"] == f"ws-{ws.short_id}"
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": ROLE_ARN}
    assert account["automountServiceAccountToken"] is False
    spec = pod_spec(objects)
    assert spec["serviceAccountName"] == "workspace-server" and spec["automountServiceAccountToken"] is False
    assert "annotations" not in render(ws)["ServiceAccount/workspace-server"]["metadata"]  # no role: no annotation


def test_the_role_does_not_roll_the_pods() -> None:
    """The role's name is deterministic: it is on the service account only, never in the checksum or pod template."""
    deployment = render(config=server_config(workload_role_arn=ROLE_ARN))["Deployment/workspace-server"]
    assert deployment == render()["Deployment/workspace-server"]


def test_ingress_routes_the_workspace_host_to_the_service() -> None:
    ingress = render()["Ingress/workspace-server"]
    assert ingress["apiVersion"] == "networking.k8s.io/v1"
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "acme.canopy.test"
    assert rule["http"]["paths"] == [
        {
            "path": "/",
            "pathType": "Prefix",
            "backend": {"service": {"name": "workspace-server", "port": {"name": "http"}}},
        }
    ]
    assert ingress["spec"]["ingressClassName"] == "nginx"
    old = render_ingress(POOLED, "ns", SETTINGS, "networking.k8s.io/v1beta1")
    assert old["spec"]["rules"][0]["http"]["paths"][0]["backend"] == {
        "serviceName": "workspace-server",
        "servicePort": "http",
    }


def test_a_sleeping_workspaces_ingress_routes_to_the_wake_service() -> None:
    settings = deploy_settings(wake_backend="canopy-api.canopy.svc.cluster.local:8000")
    versions = choose_api_versions(discovery(KUBE_1_20))
    objects = {
        f"{o['kind']}/{o['metadata']['name']}": o
        for o in render_workspace(POOLED, server_config(), settings, versions, 0, asleep=True)
    }
    wake = objects["Service/canopy-wake"]
    assert wake["spec"] == {
        "type": "ExternalName",
        "externalName": "canopy-api.canopy.svc.cluster.local",
        "ports": [{"name": "http", "port": 8000, "protocol": "TCP"}],
    }
    assert wake["metadata"]["labels"]["canopy/workspace"] == str(POOLED.id)
    ingress = objects["Ingress/workspace-server"]
    assert ingress["metadata"]["annotations"] == {
        "nginx.ingress.kubernetes.io/use-regex": "true",
        "nginx.ingress.kubernetes.io/rewrite-target": "/wake/acme/$1",
        "nginx.ingress.kubernetes.io/upstream-vhost": "canopy-api.canopy.svc.cluster.local",
    }
    assert ingress["spec"]["rules"][0]["http"]["paths"] == [
        {
            "path": "/(.*)",
            "pathType": "ImplementationSpecific",
            "backend": {"service": {"name": "canopy-wake", "port": {"name": "http"}}},
        }
    ]
    old = render_ingress(POOLED, "ns", settings, "networking.k8s.io/v1beta1", asleep=True)
    assert old["spec"]["rules"][0]["http"]["paths"][0]["backend"] == {
        "serviceName": "canopy-wake",
        "servicePort": "http",
    }
    # Awake, or asleep without a wake backend: the workspace's own Service, no annotation.
    for awake in (
        render_ingress(POOLED, "ns", settings, versions.ingress),
        render_ingress(POOLED, "ns", SETTINGS, versions.ingress, asleep=True),
    ):
        assert awake["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == "workspace-server"
        assert "annotations" not in awake["metadata"]
    assert "Service/canopy-wake" not in render(), "no wake backend, no wake service"
    default_port = render_workspace(POOLED, server_config(), deploy_settings(wake_backend="cp.internal"), versions, 1)
    assert [o["spec"]["ports"][0]["port"] for o in default_port if o["metadata"]["name"] == "canopy-wake"] == [80]


def test_service_and_pdb_select_the_workspace_pods() -> None:
    objects = render()
    selector = {"app.kubernetes.io/name": "workspace-server", "canopy/workspace": str(POOLED.id)}
    assert objects["Deployment/workspace-server"]["spec"]["selector"] == {"matchLabels": selector}
    assert objects["Service/workspace-server"]["spec"]["selector"] == selector
    assert objects["Service/workspace-server"]["spec"]["ports"][0]["targetPort"] == "http"
    pdb = objects["PodDisruptionBudget/workspace-server"]
    assert pdb["apiVersion"] == "policy/v1beta1"
    assert pdb["spec"] == {"minAvailable": 1, "selector": {"matchLabels": selector}}


def test_api_versions_are_chosen_from_discovery() -> None:
    assert choose_api_versions(discovery(KUBE_1_20)) == ApiVersions(
        ingress="networking.k8s.io/v1", pdb="policy/v1beta1", hpa="autoscaling/v2beta2"
    )
    assert choose_api_versions(discovery(KUBE_1_30)) == ApiVersions(
        ingress="networking.k8s.io/v1", pdb="policy/v1", hpa="autoscaling/v2"
    )
    old = {"networking.k8s.io": ["v1beta1"], "policy": ["v1beta1"], "autoscaling": ["v1"]}
    assert choose_api_versions(discovery(old)) == ApiVersions(
        ingress="networking.k8s.io/v1beta1", pdb="policy/v1beta1", hpa="autoscaling/v1"
    )
    with pytest.raises(ValueError, match="policy/v1, policy/v1beta1"):
        choose_api_versions(discovery({**KUBE_1_30, "policy": []}))


def test_hpa_shapes() -> None:
    v2 = render_hpa(ENTERPRISE, "ns", SETTINGS, "autoscaling/v2beta2")["spec"]
    assert v2["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "workspace-server"}
    assert (v2["minReplicas"], v2["maxReplicas"]) == (2, 6)
    assert v2["metrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}
    ]
    v1 = render_hpa(ENTERPRISE, "ns", SETTINGS, "autoscaling/v1")["spec"]
    assert v1["targetCPUUtilizationPercentage"] == 70 and "metrics" not in v1


def test_managed_kinds_follow_the_chosen_versions() -> None:
    kinds = dict((kind, version) for version, kind in managed_kinds(choose_api_versions(discovery(KUBE_1_20))))
    assert kinds["PodDisruptionBudget"] == "policy/v1beta1"
    assert kinds["HorizontalPodAutoscaler"] == "autoscaling/v2beta2"
    assert {"Pod", "ReplicaSet", "Namespace", "Secret", "ServiceAccount"} <= kinds.keys()


def test_a_plain_server_config_gets_the_default_image() -> None:
    plain = ServerConfig(**{k: v for k, v in vars(server_config()).items() if k in ServerConfig.__dataclass_fields__})
    converted = kube_server_config(plain)
    assert (converted.database_url, converted.image, converted.s3) == (plain.database_url, "", None)
    image = pod_spec(render(config=converted))["containers"][0]["image"]
    assert image == IMAGE
    image = pod_spec(render(config=server_config(image="registry.test/ws:2.0.0")))["containers"][0]["image"]
    assert image == "registry.test/ws:2.0.0"
