"""The ``aws`` provider sets: workspace servers on Kubernetes, everything else in AWS.

- Enterprise (silo): the tenant key, bucket, RDS instance, EKS cluster and ACM certificate of
  :mod:`control_plane.providers.aws`, the ingress controller and the workspace server on that cluster, its name in
  the silo zone.
- Professional (pooled): a database in the cell's PostgreSQL, a prefix of the cell's bucket, a guarded namespace
  on the cell's shared cluster, its name in the cell's zone.

EKS cluster names become API clients through :class:`~control_plane.kube.eks.ClusterResolver`
(``CANOPY_KUBECONFIG_OVERRIDES`` first, else EKS). A :class:`Fleet` per process and configuration holds the
provider objects and what they keep between reconciles.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from control_plane.cells.service import lookup
from control_plane.core.settings import Settings
from control_plane.credentials.service import WorkspaceSecrets, workspace_secret
from control_plane.kube.client import KubeClient, ref
from control_plane.kube.deployer import KubernetesCompute
from control_plane.kube.drift import kind_drift, watched_kinds
from control_plane.kube.eks import ClusterResolver
from control_plane.kube.ingress_controller import IngressControllerInstaller, load_balancer_address, silo_controller
from control_plane.kube.render import APP_NAME, DeploySettings, choose_api_versions, namespace_name
from control_plane.kube.rollout import POLL_SECONDS, rollout_status
from control_plane.providers.aws.common import Aws, CellLookup, Expiring, SiloConfig, Waits, absent, cell_of
from control_plane.providers.aws.sets import pooled_providers, silo_providers
from control_plane.providers.aws.sweep import LeakSweep
from control_plane.providers.base import (
    Cursors,
    Drift,
    Ensured,
    Observed,
    ProviderError,
    Providers,
    ServerConfig,
    Watched,
    WorkspaceSpec,
)
from control_plane.providers.workspace_client import observed_from_ping, ping
from infra.conventions import TIER_ENTERPRISE, TIER_PROFESSIONAL, TIERS
from infra.ingress import IngressNginx

CELL_SECONDS = 60.0  # how long a cell's registered outputs are reused before they are read again
WATCH_THREADS = 16  # drift watches (one per cluster and kind) gathered at once
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """Where a workspace's server runs: the EKS cluster's name, the domain its Ingress answers for and the class of
    the ingress controller that serves it (None: the deploy settings' class)."""

    cluster: str
    domain: str
    ingress_class: str | None = None


def cluster_gone(aws: Aws, region: str, cluster: str) -> bool:
    """Whether the EKS cluster ``cluster`` no longer exists (then nothing is left on it to remove)."""
    eks = aws.client("eks", region)
    return absent(lambda: eks.describe_cluster(name=cluster), "ResourceNotFoundException") is None


class KubeWorkload:
    """The workspace server on its cluster (a ComputeProvider over KubernetesCompute) and the Available probe.

    ``silo`` (enterprise): ensure also waits for the address the cluster's ingress controller (:class:`SiloIngress`)
    publishes on the Ingress (its load balancer's) and outputs it as ``ingress_hostname`` (the silo's DNS name points
    there); once the silo's cluster is gone nothing of the workspace can be left on it, so stop, teardown and
    leftovers do nothing.
    """

    def __init__(
        self,
        deploy: DeploySettings,
        target: Callable[[WorkspaceSpec], Target],
        resolver: ClusterResolver,
        *,
        silo: SiloConfig | None,
        aws: Aws,
        probe_http: bool,
    ) -> None:
        self._deploy = deploy
        self._target = target
        self._resolver = resolver
        self._silo = silo
        self._aws = aws
        self._probe_http = probe_http

    def _on(self, ws: WorkspaceSpec) -> tuple[KubernetesCompute, KubeClient]:
        target = self._target(ws)
        client = self._resolver.client(target.cluster)
        deploy = replace(
            self._deploy, domain=target.domain, ingress_class=target.ingress_class or self._deploy.ingress_class
        )
        return KubernetesCompute(deploy, lambda _: client), client

    def _cluster_gone(self, ws: WorkspaceSpec) -> bool:
        return self._silo is not None and cluster_gone(self._aws, self._silo.region, self._target(ws).cluster)

    def ensure(self, ws: WorkspaceSpec, config: ServerConfig) -> Ensured:
        compute, client = self._on(ws)
        ensured = compute.ensure(ws, config)
        if self._silo is None:
            return ensured
        return Ensured({**ensured.outputs, "ingress_hostname": self._ingress_address(client, ws)}, ensured.created)

    def observe(self, ws: WorkspaceSpec, outputs: Mapping[str, Any]) -> Observed:
        """The images the ready Pods run and, with ``probe_http``, the server's own report at its public URL."""
        compute, _ = self._on(ws)
        url = str(outputs.get("endpoint_url") or "")
        reported = observed_from_ping(url) if self._probe_http and url else Observed()
        return replace(reported, images=compute.running_images(ws))

    def retire(self, ws: WorkspaceSpec) -> None:
        """Nothing: a Deployment's rolling update replaces the Pods itself."""

    def _ingress_address(self, client: KubeClient, ws: WorkspaceSpec) -> str:
        version = choose_api_versions(client.served_versions).ingress
        namespace = namespace_name(self._deploy, ws)
        found: list[str] = []

        def published() -> bool:
            address = load_balancer_address(client.get(version, "Ingress", APP_NAME, namespace))
            found.extend([address] if address else [])
            return bool(found)

        what = f"the ingress controller to publish its load balancer's address on ingress {namespace}/{APP_NAME}"
        Waits(self._deploy.rollout_timeout, POLL_SECONDS).until(what, published)
        return found[0]

    def stop(self, ws: WorkspaceSpec) -> None:
        if not self._cluster_gone(ws):
            self._on(ws)[0].stop(ws)

    def teardown(self, ws: WorkspaceSpec) -> None:
        if not self._cluster_gone(ws):
            self._on(ws)[0].teardown(ws)

    def leftovers(self, ws: WorkspaceSpec) -> list[str]:
        return [] if self._cluster_gone(ws) else self._on(ws)[0].leftovers(ws)

    def find_drift(self, watched: Sequence[Watched], cursors: Cursors) -> list[Drift]:
        """One watch per cluster and kind (:mod:`control_plane.kube.drift`), all at once; a cluster that cannot be
        reached is logged and read again at the next detection."""
        by_cluster: dict[str, dict[uuid.UUID, Watched]] = defaultdict(dict)
        for item in watched:
            by_cluster[self._target(item.spec).cluster][item.spec.id] = item
        watches = [watch for cluster in by_cluster for watch in self._watches(cluster)]

        def run(watch: tuple[KubeClient, str, tuple[str, str, bool]]) -> list[Drift]:
            client, cluster, kind = watch
            try:
                return kind_drift(client, cluster, kind, by_cluster[cluster], cursors)
            except Exception:
                logger.warning("drift: %s on cluster %s could not be watched", kind[1], cluster, exc_info=True)
                return []

        with ThreadPoolExecutor(max_workers=WATCH_THREADS, thread_name_prefix="drift-watch") as pool:
            return [drift for found in pool.map(run, watches) for drift in found]

    def _watches(self, cluster: str) -> list[tuple[KubeClient, str, tuple[str, str, bool]]]:
        try:
            client = self._resolver.client(cluster)
            kinds = watched_kinds(choose_api_versions(client.served_versions))
        except Exception:
            logger.warning("drift: cluster %s cannot be reached", cluster, exc_info=True)
            return []
        return [(client, cluster, kind) for kind in kinds]

    def check(self, ws: WorkspaceSpec, outputs: Mapping[str, Any]) -> None:
        """Rolled out as ``kubectl rollout status`` says and, with ``probe_http``, answering at its public URL."""
        _, client = self._on(ws)
        deployment = client.get("apps/v1", "Deployment", APP_NAME, namespace_name(self._deploy, ws))
        if deployment is None:
            raise ProviderError("the workspace server is not deployed")
        status = rollout_status(deployment)
        if not status.done:
            raise ProviderError(status.message)
        url = str(outputs.get("endpoint_url") or "")
        if self._probe_http and not (url and ping(url)):
            raise ProviderError(f"the workspace does not answer its ping at {url or 'its public URL'}")


class SiloIngress:
    """The silo cluster's ingress controller (an IngressProvider): ingress-nginx behind an NLB that ends TLS with the
    workspace's certificate (``outputs["certificate_arn"]``); outputs the load balancer's address. Like
    :class:`KubeWorkload`, nothing is left to remove once the silo's cluster is gone."""

    def __init__(
        self,
        deploy: DeploySettings,
        target: Callable[[WorkspaceSpec], Target],
        resolver: ClusterResolver,
        aws: Aws,
        region: str,
    ) -> None:
        self._deploy = deploy
        self._target = target
        self._resolver = resolver
        self._aws = aws
        self._region = region

    def _on(self, ws: WorkspaceSpec, certificate_arn: str = "") -> tuple[IngressControllerInstaller, IngressNginx]:
        client = self._resolver.client(self._target(ws).cluster)
        installer = IngressControllerInstaller(client, self._deploy.rollout_timeout)
        return installer, silo_controller(ws, namespace_name(self._deploy, ws), certificate_arn)

    def _cluster_gone(self, ws: WorkspaceSpec) -> bool:
        return cluster_gone(self._aws, self._region, self._target(ws).cluster)

    def ensure(self, ws: WorkspaceSpec, outputs: Mapping[str, Any]) -> Ensured:
        certificate = outputs.get("certificate_arn")
        if not certificate:
            raise ProviderError("no TLS certificate for the load balancer yet")
        installer, controller = self._on(ws, str(certificate))
        address, created = installer.ensure(controller)
        result = {"ingress_class": controller.ingress_class, "ingress_namespace": controller.namespace}
        return Ensured({**result, "load_balancer_hostname": address}, tuple(created))

    def teardown(self, ws: WorkspaceSpec) -> None:
        if not self._cluster_gone(ws):
            installer, controller = self._on(ws)
            installer.teardown(ws, controller)

    def leftovers(self, ws: WorkspaceSpec) -> list[str]:
        return [] if self._cluster_gone(ws) else [ref(obj) for obj in self._on(ws)[0].objects(ws)]


class AwsSweep:
    """What AWS still holds for a workspace: tagged resources, EKS, IAM, ACM, and its DNS records (its name and its
    certificate's validation record, from the outputs)."""

    def __init__(self, aws: Aws) -> None:
        self._aws = aws

    def leftovers(self, ws: WorkspaceSpec, outputs: Mapping[str, Any]) -> list[str]:
        pairs = (("dns_zone_id", "dns_name"), ("certificate_zone_id", "certificate_validation_name"))
        records = [(str(outputs[z]), str(outputs[n])) for z, n in pairs if outputs.get(z) and outputs.get(n)]
        return LeakSweep(self._aws, ws.region).leftovers_for(ws.id, records)


def deploy_settings(settings: Settings) -> DeploySettings:
    """How workspace servers are deployed (the domain is set per workspace by :class:`KubeWorkload`)."""
    return DeploySettings(
        env=settings.aws_environment,
        domain="",
        image=settings.kube_workspace_image,
        ingress_class=settings.kube_ingress_class,
        database_cidrs=tuple(settings.kube_database_cidrs),
        s3_cidrs=tuple(settings.kube_s3_cidrs),
        rollout_timeout=settings.kube_rollout_timeout_seconds,
        extra_env=MappingProxyType(dict(settings.kube_extra_env)),
        wake_backend=settings.kube_wake_backend or "",
    )


def silo_set(settings: Settings, aws: Aws, resolver: ClusterResolver) -> Providers:
    """Enterprise: the silo's own resources and cluster."""
    silo = silo_providers(settings, aws)
    config = SiloConfig.from_settings(settings)

    deploy = deploy_settings(settings)

    def target(ws: WorkspaceSpec) -> Target:
        if not config.zone_domain:
            raise ProviderError("set CANOPY_AWS_ZONE_DOMAIN for silo names")
        controller = silo_controller(ws, namespace_name(deploy, ws))
        return Target(config.names(ws).eks_cluster, config.zone_domain, controller.ingress_class)

    workload = KubeWorkload(deploy, target, resolver, silo=config, aws=aws, probe_http=settings.aws_probe_http)
    return Providers(
        database=silo.database,
        storage=silo.storage,
        compute=workload,
        dns=silo.dns,
        kms=silo.kms,
        cluster=silo.cluster,
        identity=silo.identity,
        certificate=silo.certificate,
        ingress=SiloIngress(deploy, target, resolver, aws, config.region),
        probe=workload,
        sweep=AwsSweep(aws),
        backup=silo.backup,
        drift=(silo.storage, silo.database, workload),
    )


def pooled_set(
    settings: Settings,
    aws: Aws,
    resolver: ClusterResolver,
    cells: CellLookup,
    secrets: WorkspaceSecrets = workspace_secret,
) -> Providers:
    """Professional: a share of the workspace's cell (``secrets``: the workspaces' stored credentials)."""
    pooled = pooled_providers(settings, aws, cells, secrets)

    def target(ws: WorkspaceSpec) -> Target:
        cell = cell_of(cells, ws)
        return Target(cell.cluster_name, cell.domain)

    workload = KubeWorkload(
        deploy_settings(settings), target, resolver, silo=None, aws=aws, probe_http=settings.aws_probe_http
    )
    return Providers(
        database=pooled.database,
        storage=pooled.storage,
        compute=workload,
        dns=pooled.dns,
        identity=pooled.identity,
        probe=workload,
        sweep=AwsSweep(aws),
        backup=pooled.backup,
        drift=(pooled.database, pooled.storage, workload),
    )


class Fleet:
    """A process's provider sets of one configuration, with what they share and keep: boto3 clients, the
    Kubernetes clients by cluster name, cells (read again after :data:`CELL_SECONDS`), cell admin credentials.
    """

    def __init__(self, settings: Settings) -> None:
        self._aws = aws = Aws()
        resolver = ClusterResolver.from_settings(settings)
        cells: CellLookup = Expiring(lookup, CELL_SECONDS)
        self._sets = {
            TIER_ENTERPRISE: functools.partial(silo_set, settings, aws, resolver),
            TIER_PROFESSIONAL: functools.partial(pooled_set, settings, aws, resolver, cells),
        }
        self._pooled_with = functools.partial(pooled_set, settings, aws, resolver, cells)
        self._built: dict[str, Providers] = {}
        self._lock = threading.Lock()

    def warm(self, settings: Settings) -> None:
        """Build every tier's provider set and the AWS clients of the silo region before the first job."""
        for tier in TIERS:
            self.providers(tier)
        with contextlib.suppress(ProviderError):  # no region configured: the clients are built on first use
            self._aws.warm(SiloConfig.from_settings(settings).region)

    def providers(self, tier: str) -> Providers:
        """The provider set of ``tier`` (built on first use)."""
        with self._lock:
            if tier not in self._built:
                self._built[tier] = self._sets[tier]()
            return self._built[tier]

    def providers_with(self, tier: str, secrets: WorkspaceSecrets) -> Providers:
        """A provider set of ``tier`` whose pooled databases take their passwords from ``secrets`` (a restore drill's
        scratch database), built for the caller and not kept; a silo's is the kept one (its credentials live in
        Secrets Manager)."""
        return self._pooled_with(secrets) if tier == TIER_PROFESSIONAL else self.providers(tier)


_fleets: dict[str, Fleet] = {}
_fleets_lock = threading.Lock()


def fleet_of(settings: Settings) -> Fleet:
    """The process's :class:`Fleet` for ``settings`` (one per configuration)."""
    key = settings.model_dump_json()
    with _fleets_lock:
        if key not in _fleets:
            _fleets[key] = Fleet(settings)
        return _fleets[key]


def aws_providers(settings: Settings, tier: str, secrets: WorkspaceSecrets | None = None) -> Providers:
    """The provider set of ``tier`` for ``settings``, kept for the life of the process; with ``secrets``, one whose
    pooled databases take their passwords from there (:meth:`Fleet.providers_with`)."""
    fleet = fleet_of(settings)
    return fleet.providers(tier) if secrets is None else fleet.providers_with(tier, secrets)
