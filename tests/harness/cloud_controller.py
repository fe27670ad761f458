"""A stand-in for what gives load balancers their addresses on AWS, for the test cluster (a thread; a context manager).

On EKS two things publish an ingress address: the cloud's service controller makes an NLB for each Service of
``type: LoadBalancer``, holds the Service with the ``service.kubernetes.io/load-balancer-cleanup`` finalizer until
the NLB is deleted, and writes the NLB's name to ``status.loadBalancer.ingress``; ingress-nginx (``--publish-service``)
copies its Service's address onto every Ingress of its class. The test cluster runs neither (no cloud, and Pods are
not run), so this thread plays both:

- every LoadBalancer Service gets the finalizer at once and, ``service_delay`` seconds after it was first seen, the
  hostname ``<name>-<16 hex of its uid>.elb.<region>.amazonaws.com``; a deleted one loses the finalizer (the "NLB" is
  deleted) so that the API server removes it;
- for each ingress-nginx Deployment with a ready replica (``app.kubernetes.io/name=ingress-nginx``), its args
  (``--ingress-class``, ``--publish-service``, ``--watch-namespace``) say which Ingresses it serves: once its Service
  has an address, those Ingresses get it, ``ingress_delay`` seconds after each was first seen.

``published`` records when each Ingress got its address (monotonic time), so tests can tell how long a reader waited.
HTTP routing by Host is :mod:`tests.harness.ingress` (``StandInIngress``), a separate stand-in.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from control_plane.kube.client import KubeApiError, KubeClient
from control_plane.kube.ingress_controller import load_balancer_address
from infra.ingress import LB_CLEANUP_FINALIZER

JSON = dict[str, Any]
INGRESS_VERSION = "networking.k8s.io/v1"
TICK_SECONDS = 0.1
CONTROLLER_SELECTOR = "app.kubernetes.io/name=ingress-nginx"


def elb_hostname(service: JSON, region: str) -> str:
    """The NLB name AWS would give ``service``."""
    digest = hashlib.sha256(service["metadata"]["uid"].encode()).hexdigest()[:16]
    return f"{service['metadata']['name'][:32]}-{digest}.elb.{region}.amazonaws.com"


def controller_args(deployment: JSON) -> dict[str, str]:
    """``--key=value`` args of an ingress-nginx Deployment's first container, ``$(POD_NAMESPACE)`` filled in."""
    namespace = deployment["metadata"]["namespace"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    args = {}
    for arg in container.get("args") or []:
        key, _, value = arg.partition("=")
        args[key.lstrip("-")] = value.replace("$(POD_NAMESPACE)", namespace)
    return args


class StandInCloudController:
    """See the module docstring; ``region`` names the hostnames."""

    def __init__(
        self, kubeconfig: str | Path, region: str, *, service_delay: float = 0.5, ingress_delay: float = 0.5
    ) -> None:
        self._client = KubeClient.from_kubeconfig(kubeconfig)
        self._region = region
        self._delays = (service_delay, ingress_delay)
        self._seen: dict[str, float] = {}
        self.published: dict[tuple[str, str], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stand-in-cloud-controller", daemon=True)

    def __enter__(self) -> StandInCloudController:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._client.close()

    def _run(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            with contextlib.suppress(KubeApiError, OSError):  # an object deleted meanwhile, the cluster stopping
                self._load_balancers()
                self._controllers()

    def _age(self, obj: JSON) -> float:
        uid = obj["metadata"]["uid"]
        return time.monotonic() - self._seen.setdefault(uid, time.monotonic())

    def _load_balancers(self) -> None:
        for service in self._client.list_kind("v1", "Service"):
            if service["spec"].get("type") != "LoadBalancer":
                continue
            finalizers = service["metadata"].get("finalizers") or []
            if service["metadata"].get("deletionTimestamp"):
                if LB_CLEANUP_FINALIZER in finalizers:
                    self._client.update(service, _without_finalizer)
            elif LB_CLEANUP_FINALIZER not in finalizers:
                self._client.update(service, _with_finalizer)
            elif load_balancer_address(service) is None and self._age(service) >= self._delays[0]:
                self._client.update(service, _addressed(elb_hostname(service, self._region)), subresource="status")

    def _controllers(self) -> None:
        for deployment in self._client.list_kind("apps/v1", "Deployment", selector=CONTROLLER_SELECTOR):
            if not (deployment.get("status") or {}).get("readyReplicas"):
                continue
            args = controller_args(deployment)
            namespace, _, name = args.get("publish-service", "").partition("/")
            address = load_balancer_address(self._client.get("v1", "Service", name, namespace)) if name else None
            if address:
                self._publish(args.get("ingress-class", ""), args.get("watch-namespace") or None, address)

    def _publish(self, ingress_class: str, namespace: str | None, address: str) -> None:
        for ingress in self._client.list_kind(INGRESS_VERSION, "Ingress", namespace):
            if ingress["spec"].get("ingressClassName") != ingress_class or load_balancer_address(ingress) == address:
                continue
            if self._age(ingress) >= self._delays[1]:
                self._client.update(ingress, _addressed(address), subresource="status")
                meta = ingress["metadata"]
                self.published[meta["namespace"], meta["name"]] = time.monotonic()


def _addressed(hostname: str) -> Callable[[JSON], None]:
    """A mutation giving an object's status the load balancer ``hostname``."""

    def mutate(obj: JSON) -> None:
        obj["status"] = {"loadBalancer": {"ingress": [{"hostname": hostname}]}}

    return mutate


def _with_finalizer(service: JSON) -> None:
    service["metadata"]["finalizers"] = [*(service["metadata"].get("finalizers") or []), LB_CLEANUP_FINALIZER]


def _without_finalizer(service: JSON) -> None:
    kept = [f for f in service["metadata"].get("finalizers") or [] if f != LB_CLEANUP_FINALIZER]
    service["metadata"]["finalizers"] = kept
