"""The Kubernetes objects of one workspace, rendered as plain data (dicts in the API's JSON shape).

Pure functions: no client, no I/O. API versions that differ across Kubernetes releases come in as an
:class:`ApiVersions` chosen from the server's discovery by :func:`choose_api_versions`.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from control_plane.providers.base import ServerConfig, WorkspaceSpec
from infra.conventions import (
    MANAGED_BY,
    NAMESPACE_LIMITS,
    TAG_MANAGED_BY,
    TIER_ENTERPRISE,
    TIER_PROFESSIONAL,
    WORKSPACE_SERVICE_ACCOUNT,
    NamespaceLimits,
    container_security_context,
    default_deny_network_policy,
    kubernetes_labels,
    limit_range_manifest,
    namespace_manifest,
    pod_security_context,
    resource_quota_manifest,
    workspace_hostname,
    workspace_names,
)

JSON = dict[str, Any]
APP_NAME = "workspace-server"  # the Deployment, Service, Ingress, PDB and HPA
SECRET_NAME = "workspace-server-secrets"
CONFIG_MAP_NAME = "workspace-server-config"
ALLOW_POLICY_NAME = "workspace-server"
CONTAINER_PORT = 8065
SERVICE_PORT = 80
PING_PATH = "/api/v4/system/ping"
CHECKSUM_ANNOTATION = "canopy.dev/config-checksum"
ROLE_ARN_ANNOTATION = "eks.amazonaws.com/role-arn"  # read by the EKS pod identity webhook when it admits a pod
ADMIN_ENV = ("WS_INITIAL_ADMIN_EMAIL", "WS_INITIAL_ADMIN_USERNAME", "WS_INITIAL_ADMIN_PASSWORD_HASH")
WAKE_SERVICE = "canopy-wake"  # where a sleeping workspace's Ingress sends requests: the control plane's wake route
NGINX = "nginx.ingress.kubernetes.io/"


@dataclass(frozen=True)
class S3Config:
    """Where the workspace's files go (credentials come from the pod's IAM role, never from here)."""

    bucket: str
    prefix: str
    kms_key_id: str
    region: str = ""
    endpoint_url: str = ""


@dataclass(frozen=True)
class InitialAdmin:
    """The signup's admin, created by the workspace server at start if it has no users yet."""

    email: str
    username: str
    password_hash: str  # argon2


@dataclass(frozen=True)
class KubeServerConfig(ServerConfig):
    """A :class:`ServerConfig` plus what only a cluster deployment needs (``files_dir`` is unused: files are in S3)."""

    image: str = ""
    s3: S3Config | None = None
    initial_admin: InitialAdmin | None = None
    workload_role_arn: str | None = None
    late_admin: str | None = None  # an initial admin that came after the server started: its pods restart once


def kube_server_config(config: ServerConfig) -> KubeServerConfig:
    """``config`` as a :class:`KubeServerConfig` (no image: the deploy settings' default image is used)."""
    if isinstance(config, KubeServerConfig):
        return config
    return KubeServerConfig(**{f.name: getattr(config, f.name) for f in dataclasses.fields(ServerConfig)})


@dataclass(frozen=True)
class Resources:
    """Container requests and limits of the workspace server."""

    requests_cpu: str = "250m"
    requests_memory: str = "512Mi"
    limits_cpu: str = "1"
    limits_memory: str = "1Gi"


@dataclass(frozen=True)
class DeploySettings:
    """How workspaces are deployed on a cluster (the same for every workspace of one deployer)."""

    env: str  # deployment environment (infra.conventions names)
    domain: str  # workspaces answer at <slug>.<domain>
    image: str  # used when the KubeServerConfig names no image (the release's)
    ingress_class: str = "nginx"
    ingress_namespace_labels: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({"kubernetes.io/metadata.name": "ingress-nginx"})
    )
    database_cidrs: tuple[str, ...] = ()
    database_port: int = 5432
    s3_cidrs: tuple[str, ...] = ()
    replicas: Mapping[str, int] = field(
        default_factory=lambda: MappingProxyType({TIER_PROFESSIONAL: 1, TIER_ENTERPRISE: 2})
    )
    max_replicas: int = 6  # enterprise HPA ceiling
    target_cpu_utilization: int = 70
    resources: Resources = Resources()
    namespace_limits: NamespaceLimits = NAMESPACE_LIMITS
    run_as_user: int = 10001
    progress_deadline_seconds: int = 600
    rollout_timeout: float = 300.0
    cluster_domain: str = "cluster.local"
    extra_env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # e.g. WS_REDIS_URL
    # host[:port] of the control plane's API as the ingress controller reaches it: while a workspace sleeps, its
    # Ingress sends every request there, as /wake/<slug>/<path> (empty: a sleeping workspace's Ingress is left as is).
    wake_backend: str = ""


@dataclass(frozen=True)
class ApiVersions:
    """API versions of the kinds whose version depends on the Kubernetes release."""

    ingress: str = "networking.k8s.io/v1"
    pdb: str = "policy/v1"
    hpa: str = "autoscaling/v2"


_PREFERENCES = {
    "ingress": ("networking.k8s.io", ("v1", "v1beta1")),
    "pdb": ("policy", ("v1", "v1beta1")),
    "hpa": ("autoscaling", ("v2", "v2beta2", "v1")),
}


def choose_api_versions(served: Callable[[str], Sequence[str]]) -> ApiVersions:
    """The newest version we render of each kind among those ``served(group)`` lists (discovery)."""
    chosen = {}
    for kind, (group, preferred) in _PREFERENCES.items():
        versions = [v for v in preferred if v in served(group)]
        if not versions:
            raise ValueError(f"the cluster serves none of {', '.join(f'{group}/{v}' for v in preferred)}")
        chosen[kind] = f"{group}/{versions[0]}"
    return ApiVersions(**chosen)


# --- names and labels --------------------------------------------------------------------------------


def is_pooled(ws: WorkspaceSpec) -> bool:
    """Professional workspaces share a cell's cluster; enterprise ones have a cluster of their own."""
    return ws.tier != TIER_ENTERPRISE


def namespace_name(settings: DeploySettings, ws: WorkspaceSpec) -> str:
    return workspace_names(settings.env, ws.id).namespace


def workspace_selector(ws: WorkspaceSpec) -> str:
    """Label selector of everything of the workspace (the leak sweep)."""
    return f"canopy/workspace={ws.id}"


def labels(ws: WorkspaceSpec) -> dict[str, str]:
    """Labels every object of the workspace carries."""
    return {
        **kubernetes_labels({**ws.tags, TAG_MANAGED_BY: MANAGED_BY}),
        "app.kubernetes.io/name": APP_NAME,
    }


def selector_labels(ws: WorkspaceSpec) -> dict[str, str]:
    """The (immutable) pod selector of the Deployment, Service, PDB and network policy."""
    return {"app.kubernetes.io/name": APP_NAME, "canopy/workspace": str(ws.id)}


def internal_url(settings: DeploySettings, ws: WorkspaceSpec) -> str:
    """The Service's cluster DNS name."""
    return f"http://{APP_NAME}.{namespace_name(settings, ws)}.svc.{settings.cluster_domain}"


def _labelled(obj: JSON, ws: WorkspaceSpec) -> JSON:
    obj["metadata"]["labels"] = {**obj["metadata"].get("labels", {}), **labels(ws)}
    return obj


def _object(api_version: str, kind: str, ws: WorkspaceSpec, name: str, namespace: str, **body: Any) -> JSON:
    metadata = {"name": name, "namespace": namespace, "labels": labels(ws)}
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, **body}


# --- namespace ---------------------------------------------------------------------------------------


def render_namespace(ws: WorkspaceSpec, namespace: str) -> JSON:
    return _labelled(namespace_manifest(namespace, {**ws.tags, TAG_MANAGED_BY: MANAGED_BY}), ws)


def render_guardrails(ws: WorkspaceSpec, namespace: str, settings: DeploySettings) -> list[JSON]:
    """ResourceQuota, LimitRange, default-deny NetworkPolicy and the narrow allows of a pooled namespace."""
    return [
        _labelled(resource_quota_manifest(namespace, settings.namespace_limits), ws),
        _labelled(limit_range_manifest(namespace, settings.namespace_limits), ws),
        _labelled(default_deny_network_policy(namespace), ws),
        render_allow_policy(ws, namespace, settings),
    ]


def render_allow_policy(ws: WorkspaceSpec, namespace: str, settings: DeploySettings) -> JSON:
    """Ingress from the ingress controller's namespace only; egress to DNS and the database and S3 CIDRs."""
    ingress = [
        {
            "from": [{"namespaceSelector": {"matchLabels": dict(settings.ingress_namespace_labels)}}],
            "ports": [{"protocol": "TCP", "port": CONTAINER_PORT}],
        }
    ]
    dns = {"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}
    egress: list[JSON] = [{"to": [dns], "ports": [{"protocol": p, "port": 53} for p in ("UDP", "TCP")]}]
    for cidrs, port in ((settings.database_cidrs, settings.database_port), (settings.s3_cidrs, 443)):
        if cidrs:
            to = [{"ipBlock": {"cidr": cidr}} for cidr in cidrs]
            egress.append({"to": to, "ports": [{"protocol": "TCP", "port": port}]})
    spec = {
        "podSelector": {"matchLabels": selector_labels(ws)},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": ingress,
        "egress": egress,
    }
    return _object("networking.k8s.io/v1", "NetworkPolicy", ws, ALLOW_POLICY_NAME, namespace, spec=spec)


# --- configuration -----------------------------------------------------------------------------------


def secret_env(config: KubeServerConfig) -> dict[str, str]:
    """Environment the server reads from its Secret."""
    env = {"WS_DATABASE_URL": config.database_url, "WS_CONTROL_TOKEN": config.control_token}
    if config.s3:
        env.update(WS_S3_BUCKET=config.s3.bucket, WS_S3_PREFIX=config.s3.prefix, WS_S3_KMS_KEY_ID=config.s3.kms_key_id)
        aws = {"AWS_REGION": config.s3.region, "AWS_ENDPOINT_URL": config.s3.endpoint_url}
        env.update({k: v for k, v in aws.items() if v})
    if config.initial_admin:
        admin = config.initial_admin
        env.update(zip(ADMIN_ENV, (admin.email, admin.username, admin.password_hash), strict=True))
    return env


def config_env(config: KubeServerConfig, settings: DeploySettings) -> dict[str, str]:
    """Non-secret environment the server reads from its ConfigMap."""
    return {
        "WS_PUBLIC_URL": config.public_url,
        "WS_SITE_NAME": config.site_name,
        "WS_TEAM_NAME": config.team_name,
        "WS_TEAM_DISPLAY_NAME": config.team_display_name,
        "WS_LISTEN_HOST": "0.0.0.0",
        "WS_LISTEN_PORT": str(CONTAINER_PORT),
        "WS_FILES_DIR": "/tmp/files",
        **(config.health.environment() if config.health else {}),
        **settings.extra_env,
    }


def config_checksum(secret: Mapping[str, str], config: Mapping[str, str], late_admin: str | None = None) -> str:
    """Digest of the server's configuration: a change rolls the pods.

    The initial admin is left out: it only matters at first start, and forgetting it must not restart pods. An
    admin that came after the server started (``late_admin``, kept once it came) is in: the pods restart once, and
    the server creates it at that start.
    """
    kept = {k: v for k, v in secret.items() if k not in ADMIN_ENV}
    parts = [kept, dict(config), *([late_admin] if late_admin else [])]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def render_secret(ws: WorkspaceSpec, namespace: str, env: Mapping[str, str]) -> JSON:
    data = {k: base64.b64encode(v.encode()).decode() for k, v in env.items()}
    return _object("v1", "Secret", ws, SECRET_NAME, namespace, type="Opaque", data=data)


def render_config_map(ws: WorkspaceSpec, namespace: str, env: Mapping[str, str]) -> JSON:
    return _object("v1", "ConfigMap", ws, CONFIG_MAP_NAME, namespace, data=dict(env))


# --- workload ----------------------------------------------------------------------------------------


def render_service_account(ws: WorkspaceSpec, namespace: str, role_arn: str | None) -> JSON:
    """The pods' service account, annotated with the workspace's IAM role: the EKS pod identity webhook gives its
    pods a projected token and ``AWS_ROLE_ARN``/``AWS_WEB_IDENTITY_TOKEN_FILE``, which boto3 picks up. No API token.

    The role is not part of the config checksum: its name is deterministic, so it never changes under running pods.
    """
    obj = _object("v1", "ServiceAccount", ws, WORKSPACE_SERVICE_ACCOUNT, namespace, automountServiceAccountToken=False)
    if role_arn:
        obj["metadata"]["annotations"] = {ROLE_ARN_ANNOTATION: role_arn}
    return obj


def _probe(period: int, failures: int, initial_delay: int = 0) -> JSON:
    # A zero is never rendered: the server drops it (omitempty), and applying it again would not be a no-op.
    delay = {"initialDelaySeconds": initial_delay} if initial_delay else {}
    return {
        "httpGet": {"path": PING_PATH, "port": "http"},
        **delay,
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def _container(image: str, settings: DeploySettings) -> JSON:
    r = settings.resources
    return {
        "name": APP_NAME,
        "image": image,
        "ports": [{"name": "http", "containerPort": CONTAINER_PORT, "protocol": "TCP"}],
        "envFrom": [{"secretRef": {"name": SECRET_NAME}}, {"configMapRef": {"name": CONFIG_MAP_NAME}}],
        "readinessProbe": _probe(period=5, failures=3),
        "livenessProbe": _probe(period=10, failures=6, initial_delay=15),
        "resources": {
            "requests": {"cpu": r.requests_cpu, "memory": r.requests_memory},
            "limits": {"cpu": r.limits_cpu, "memory": r.limits_memory},
        },
        "securityContext": container_security_context(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }


def render_deployment(
    ws: WorkspaceSpec, namespace: str, image: str, replicas: int, checksum: str, settings: DeploySettings
) -> JSON:
    """The workspace server: non-root, read-only root (``/tmp`` is an emptyDir), env from its Secret and ConfigMap,
    running as the workspace's service account (its IAM role)."""
    uid = settings.run_as_user
    pod_spec = {
        "serviceAccountName": WORKSPACE_SERVICE_ACCOUNT,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {**pod_security_context(), "runAsUser": uid, "runAsGroup": uid, "fsGroup": uid},
        "containers": [_container(image, settings)],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }
    spec = {
        "replicas": replicas,
        "selector": {"matchLabels": selector_labels(ws)},
        "revisionHistoryLimit": 3,
        "progressDeadlineSeconds": settings.progress_deadline_seconds,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "template": {
            "metadata": {"labels": labels(ws), "annotations": {CHECKSUM_ANNOTATION: checksum}},
            "spec": pod_spec,
        },
    }
    return _object("apps/v1", "Deployment", ws, APP_NAME, namespace, spec=spec)


def render_service(ws: WorkspaceSpec, namespace: str) -> JSON:
    port = {"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}
    spec = {"type": "ClusterIP", "selector": selector_labels(ws), "ports": [port]}
    return _object("v1", "Service", ws, APP_NAME, namespace, spec=spec)


def wake_backend(settings: DeploySettings) -> tuple[str, int]:
    """The wake backend's host and port (80 unless given)."""
    host, colon, port = settings.wake_backend.rpartition(":")
    return (host, int(port)) if colon else (settings.wake_backend, SERVICE_PORT)


def render_wake_service(ws: WorkspaceSpec, namespace: str, settings: DeploySettings) -> JSON:
    """``canopy-wake``: the control plane's API under a name of the workspace's namespace (``ExternalName``), which
    the Ingress of a sleeping workspace routes to."""
    host, port = wake_backend(settings)
    spec = {"type": "ExternalName", "externalName": host, "ports": [{"name": "http", "port": port, "protocol": "TCP"}]}
    return _object("v1", "Service", ws, WAKE_SERVICE, namespace, spec=spec)


def render_ingress(
    ws: WorkspaceSpec, namespace: str, settings: DeploySettings, api_version: str, *, asleep: bool = False
) -> JSON:
    """``<slug>.<domain>`` to the Service (``networking.k8s.io/v1`` or the older ``v1beta1`` backend shape).

    ``asleep`` (with a wake backend): every path to ``canopy-wake`` instead, rewritten to ``/wake/<slug>/<path>``
    (ingress-nginx annotations), where the control plane wakes the workspace, holds the request until it serves,
    then sends the client back to the same address."""
    service = WAKE_SERVICE if asleep and settings.wake_backend else APP_NAME
    if api_version.endswith("/v1"):
        backend: JSON = {"service": {"name": service, "port": {"name": "http"}}}
    else:
        backend = {"serviceName": service, "servicePort": "http"}
    path = {"path": "/", "pathType": "Prefix", "backend": backend}
    annotations: dict[str, str] = {}
    if service == WAKE_SERVICE:
        path |= {"path": "/(.*)", "pathType": "ImplementationSpecific"}
        annotations = {
            NGINX + "use-regex": "true",
            NGINX + "rewrite-target": f"/wake/{ws.slug}/$1",
            NGINX + "upstream-vhost": wake_backend(settings)[0],
        }
    rule = {"host": workspace_hostname(ws.slug, settings.domain), "http": {"paths": [path]}}
    spec = {"ingressClassName": settings.ingress_class, "rules": [rule]}
    ingress = _object(api_version, "Ingress", ws, APP_NAME, namespace, spec=spec)
    if annotations:
        ingress["metadata"]["annotations"] = annotations
    return ingress


def render_pdb(ws: WorkspaceSpec, namespace: str, api_version: str) -> JSON:
    spec = {"minAvailable": 1, "selector": {"matchLabels": selector_labels(ws)}}
    return _object(api_version, "PodDisruptionBudget", ws, APP_NAME, namespace, spec=spec)


def render_hpa(ws: WorkspaceSpec, namespace: str, settings: DeploySettings, api_version: str) -> JSON:
    """CPU-driven autoscaling between the tier's replicas and ``max_replicas`` (``autoscaling/v1`` shape too)."""
    spec: JSON = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": APP_NAME},
        "minReplicas": settings.replicas[ws.tier],
        "maxReplicas": settings.max_replicas,
    }
    if api_version == "autoscaling/v1":
        spec["targetCPUUtilizationPercentage"] = settings.target_cpu_utilization
    else:
        target = {"type": "Utilization", "averageUtilization": settings.target_cpu_utilization}
        spec["metrics"] = [{"type": "Resource", "resource": {"name": "cpu", "target": target}}]
    return _object(api_version, "HorizontalPodAutoscaler", ws, APP_NAME, namespace, spec=spec)


def render_workspace(
    ws: WorkspaceSpec,
    config: KubeServerConfig,
    settings: DeploySettings,
    versions: ApiVersions,
    replicas: int,
    *,
    asleep: bool = False,
) -> list[JSON]:
    """Every object of the workspace, in the order to apply them (``asleep``: see :func:`render_ingress`)."""
    ns = namespace_name(settings, ws)
    secret, env = secret_env(config), config_env(config, settings)
    checksum = config_checksum(secret, env, config.late_admin)
    objects = [render_namespace(ws, ns)]
    objects += render_guardrails(ws, ns, settings) if is_pooled(ws) else []
    objects += [
        render_service_account(ws, ns, config.workload_role_arn),
        render_secret(ws, ns, secret),
        render_config_map(ws, ns, env),
        render_deployment(ws, ns, config.image or settings.image, replicas, checksum, settings),
        render_service(ws, ns),
        *([render_wake_service(ws, ns, settings)] if settings.wake_backend else []),
        render_ingress(ws, ns, settings, versions.ingress, asleep=asleep),
        render_pdb(ws, ns, versions.pdb),
    ]
    objects += [] if is_pooled(ws) else [render_hpa(ws, ns, settings, versions.hpa)]
    return objects


def managed_kinds(versions: ApiVersions) -> list[tuple[str, str]]:
    """(apiVersion, kind) of everything a workspace can own, the controllers' ReplicaSets and Pods included."""
    return [
        ("v1", "Namespace"),
        ("v1", "ResourceQuota"),
        ("v1", "LimitRange"),
        ("networking.k8s.io/v1", "NetworkPolicy"),
        ("v1", "ServiceAccount"),
        ("v1", "Secret"),
        ("v1", "ConfigMap"),
        ("apps/v1", "Deployment"),
        ("apps/v1", "ReplicaSet"),
        ("v1", "Pod"),
        ("v1", "Service"),
        (versions.ingress, "Ingress"),
        (versions.pdb, "PodDisruptionBudget"),
        (versions.hpa, "HorizontalPodAutoscaler"),
    ]
