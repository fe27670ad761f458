"""From an EKS cluster name to an API client: a kubeconfig override, or the EKS endpoint with an IAM token.

The token is what ``aws eks get-token`` / aws-iam-authenticator produce: ``k8s-aws-v1.`` and the unpadded
URL-safe base64 of an STS ``GetCallerIdentity`` URL presigned (60 s) with the ``x-k8s-aws-id`` header signed.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import boto3

from control_plane.core import fleet_counters
from control_plane.core.settings import Settings
from control_plane.kube.client import KubeClient
from control_plane.kube.render import is_pooled
from control_plane.providers.base import ProviderError, WorkspaceSpec
from infra.conventions import cell_names, workspace_names

TOKEN_PREFIX = "k8s-aws-v1."
CLUSTER_ID_HEADER = "x-k8s-aws-id"
PRESIGN_SECONDS = 60
TOKEN_REFRESH_SECONDS = 600  # EKS accepts a token for 15 minutes
WILDCARD = "*"


def eks_token(session: Any, cluster: str, region: str) -> str:
    """A bearer token for EKS cluster ``cluster`` (needs credentials, no network)."""
    sts = session.client("sts", region_name=region, endpoint_url=f"https://sts.{region}.amazonaws.com")

    def sign_cluster_id(request: Any, **_: Any) -> None:
        request.headers[CLUSTER_ID_HEADER] = cluster

    sts.meta.events.register("before-sign.sts.GetCallerIdentity", sign_cluster_id)
    url = str(sts.generate_presigned_url("get_caller_identity", ExpiresIn=PRESIGN_SECONDS, HttpMethod="GET"))
    return TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


class _TokenSource:
    """A fresh token when the last one is older than :data:`TOKEN_REFRESH_SECONDS`."""

    def __init__(self, session: Any, cluster: str, region: str) -> None:
        self._args = (session, cluster, region)
        self._token = ""
        self._made = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            if not self._token or time.monotonic() - self._made > TOKEN_REFRESH_SECONDS:
                self._token, self._made = eks_token(*self._args), time.monotonic()
            return self._token


KUBE_CALLS = "kube_calls"
"""Counter of Kubernetes API requests the control plane sent (labels: cluster, verb), read by ``/metrics``."""


def _counter(cluster: str) -> Callable[[str], None]:
    return lambda verb: fleet_counters.add(KUBE_CALLS, cluster, verb)


class ClusterResolver:
    """Maps an EKS cluster name to a (cached) :class:`KubeClient`.

    ``overrides`` (``{"<cluster name or *>": "/path/to/kubeconfig"}``) win: that is how the shared cell cluster
    can be given directly, and how tests point the clusters moto creates at a real test cluster.
    """

    def __init__(self, overrides: Mapping[str, str] | None = None, session: Any = None) -> None:
        self._overrides = dict(overrides or {})
        self._session = session
        self._clients: dict[str, KubeClient] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, session: Any = None) -> ClusterResolver:
        return cls(settings.kubeconfig_overrides, session)

    def client(self, cluster: str) -> KubeClient:
        """The API client of ``cluster`` (created once, then reused with its discovery cache)."""
        with self._lock:
            if cluster not in self._clients:
                self._clients[cluster] = self._connect(cluster)
            return self._clients[cluster]

    def _connect(self, cluster: str) -> KubeClient:
        kubeconfig = self._overrides.get(cluster) or self._overrides.get(WILDCARD)
        if kubeconfig:
            return KubeClient.from_kubeconfig(kubeconfig, _counter(cluster))
        session = self._session or boto3.Session()
        described = session.client("eks").describe_cluster(name=cluster)["cluster"]
        ca_pem = base64.b64decode(described["certificateAuthority"]["data"])
        region = str(session.region_name or session.client("eks").meta.region_name)
        token = _TokenSource(session, cluster, region)
        return KubeClient.from_token(str(described["endpoint"]), ca_pem, token, _counter(cluster))

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()


def workspace_cluster(env: str, ws: WorkspaceSpec) -> str:
    """The EKS cluster a workspace runs on: its cell's shared one (professional) or its silo's (enterprise)."""
    if not is_pooled(ws):
        return workspace_names(env, ws.id).eks_cluster
    if not ws.cell:
        raise ProviderError(f"pooled workspace {ws.id} has no cell")
    return cell_names(ws.cell).cluster
