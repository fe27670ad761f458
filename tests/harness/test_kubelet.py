"""A test kubelet: stands in for a node so the real controllers see Pods run.

It registers one Node (Ready, big allocatable), renews its Lease and NodeStatus, binds unscheduled Pods
to itself through the Binding subresource (there is no kube-scheduler), reports bound Pods as running
(or as told per Pod, below) and finishes graceful deletions. No container is run, except in process mode:
with ``--process-images FILE``, a Pod whose container image is in that map runs as a local process with a real
readiness probe (``kubelet_process.py``; this module's annotation and modes do not apply to it).

Per-Pod behaviour, from the annotation ``canopy.test/kubelet`` (default ``run``):

- ``run``: Running, containers started and ready.
- ``fail``: Running but never ready; containers wait in CrashLoopBackOff. Also for any container image
  containing ``:broken``.
- ``succeed``: Succeeded, containers terminated with exit code 0 (for Jobs).
- ``pending``: bound, left Pending with containers in ContainerCreating.

Standalone (stdlib only) so the harness runs it as a subprocess::

    python test_kubelet.py --server https://127.0.0.1:PORT --ca-file ca.crt --token-file token --node NAME \
        [--process-images images.json --work-dir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import signal
import ssl
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

if TYPE_CHECKING or __package__:
    from tests.harness.kubelet_process import PodProcess, load_process_images, process_entry
else:  # run as a script: its directory is on sys.path
    from kubelet_process import PodProcess, load_process_images, process_entry

ANNOTATION = "canopy.test/kubelet"
KUBELET_VERSION = "v1.20.2"
HEARTBEAT_SECONDS = 10.0
JSON = dict[str, Any]


def now() -> str:
    """The current time in Kubernetes' RFC 3339 form."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    """The current time as a Kubernetes MicroTime."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ApiError(Exception):
    """A non-2xx answer of the API server."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.status = status


class Api:
    """A minimal JSON client for the API server (one connection; not thread-safe)."""

    def __init__(self, server: str, ca_file: str, token: str) -> None:
        url = urlsplit(server)
        self.host = url.hostname or "127.0.0.1"
        self.port = url.port or 443
        self.context = ssl.create_default_context(cafile=ca_file)
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self.conn: http.client.HTTPSConnection | None = None

    def _connect(self, timeout: float) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self.host, self.port, context=self.context, timeout=timeout)

    def request(self, method: str, path: str, body: JSON | None = None, content_type: str = "application/json") -> JSON:
        """Sends one request and returns the decoded answer; raises ApiError for non-2xx."""
        headers = dict(self.headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = self._connect(30)
            try:
                self.conn.request(method, path, body=data, headers=headers)
                resp = self.conn.getresponse()
                text = resp.read().decode()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
                continue
            if not 200 <= resp.status < 300:
                raise ApiError(resp.status, text)
            return json.loads(text) if text else {}
        raise AssertionError("unreachable")

    def watch(self, path: str, params: dict[str, str]) -> Iterator[JSON]:
        """Yields the events of one watch request until the server ends it."""
        conn = self._connect(HEARTBEAT_SECONDS * 30)
        try:
            conn.request("GET", f"{path}?{urlencode({**params, 'watch': 'true'})}", headers=self.headers)
            resp = conn.getresponse()
            if resp.status != 200:
                raise ApiError(resp.status, resp.read().decode())
            while line := resp.readline():
                if line.strip():
                    yield json.loads(line)
        finally:
            conn.close()


def pod_mode(pod: JSON) -> str:
    """What this kubelet makes of the Pod: run, fail, succeed or pending."""
    mode = (pod["metadata"].get("annotations") or {}).get(ANNOTATION, "run")
    containers = pod["spec"].get("containers", [])
    if any(":broken" in c.get("image", "") for c in containers):
        mode = "fail"
    return mode if mode in ("run", "fail", "succeed", "pending") else "run"


def terminal(pod: JSON) -> bool:
    """Whether the Pod is Succeeded or Failed (phases that may not change)."""
    return pod.get("status", {}).get("phase") in ("Succeeded", "Failed")


def _digest(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


def container_status(pod: JSON, container: JSON, mode: str, started_at: str) -> JSON:
    """The status of one container of a Pod in the given mode."""
    uid = pod["metadata"]["uid"]
    image = container.get("image", "")
    status: JSON = {
        "name": container["name"],
        "image": image,
        "imageID": f"canopy-test://{image}@sha256:{_digest(image)}",
        "restartCount": 0,
        "ready": False,
        "started": False,
        "lastState": {},
    }
    if mode == "run":
        status.update(
            containerID=f"canopy-test://{_digest(uid, container['name'])}",
            ready=True,
            started=True,
            state={"running": {"startedAt": started_at}},
        )
    elif mode == "fail":
        status.update(
            containerID=f"canopy-test://{_digest(uid, container['name'])}",
            restartCount=1,
            state={
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": "back-off 10s restarting failed container (canopy test kubelet)",
                }
            },
            lastState={
                "terminated": {"exitCode": 1, "reason": "Error", "startedAt": started_at, "finishedAt": started_at}
            },
        )
    elif mode == "succeed":
        status.update(
            containerID=f"canopy-test://{_digest(uid, container['name'])}",
            state={
                "terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started_at, "finishedAt": started_at}
            },
        )
    else:
        status["state"] = {"waiting": {"reason": "ContainerCreating"}}
    return status


def pod_status(pod: JSON, mode: str, pod_ip: str, started_at: str) -> JSON:
    """The whole Pod status this kubelet reports for the Pod."""
    ready = mode == "run"
    phase = {"run": "Running", "fail": "Running", "succeed": "Succeeded", "pending": "Pending"}[mode]
    init = [
        container_status(pod, c, "succeed" if mode != "pending" else "pending", started_at)
        for c in pod["spec"].get("initContainers", [])
    ]

    def condition(kind: str, ok: bool) -> JSON:
        cond: JSON = {
            "type": kind,
            "status": "True" if ok else "False",
            "lastProbeTime": None,
            "lastTransitionTime": started_at,
        }
        if not ok:
            cond["reason"] = "ContainersNotReady" if mode != "succeed" else "PodCompleted"
        return cond

    status: JSON = {
        "phase": phase,
        "conditions": [
            condition("Initialized", mode != "pending"),
            condition("Ready", ready),
            condition("ContainersReady", ready),
            condition("PodScheduled", True),
        ],
        "hostIP": "127.0.0.1",
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": started_at,
        "qosClass": "BestEffort",
        "containerStatuses": [container_status(pod, c, mode, started_at) for c in pod["spec"]["containers"]],
    }
    if init:
        status["initContainerStatuses"] = init
    return status


class Kubelet:
    """Registers the node, keeps it alive and drives the Pods bound to it."""

    def __init__(
        self, server: str, ca_file: str, token: str, node: str, images: dict[str, JSON], work_dir: Path
    ) -> None:
        self.args = (server, ca_file, token)
        self.node = node
        self.api = Api(server, ca_file, token)
        self.images, self.work_dir = images, work_dir
        self.processes: dict[str, PodProcess] = {}  # Pod uid -> its process (process mode)
        self.deleting: set[str] = set()  # uids of process-mode Pods being stopped
        self.reported: dict[str, str] = {}  # Pod uid -> fingerprint of the status last reported
        self.ips: dict[str, str] = {}
        self.ip_count = 0
        self.started: dict[str, str] = {}
        self.stopping = threading.Event()
        self.registered_at = now()

    # --- node -----------------------------------------------------------------------------------------------
    def node_status(self) -> JSON:
        """NodeStatus with fresh heartbeats."""
        t = now()
        resources = {"cpu": "64", "memory": "256Gi", "pods": "1000", "ephemeral-storage": "1Ti"}

        def cond(kind: str, status: str, reason: str) -> JSON:
            return {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": "canopy test kubelet",
                "lastHeartbeatTime": t,
                "lastTransitionTime": self.registered_at,
            }

        return {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID"),
                cond("Ready", "True", "KubeletReady"),
            ],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": self.node}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": {
                "machineID": _digest("machine", self.node)[:32],
                "systemUUID": _digest("uuid", self.node)[:32],
                "bootID": _digest("boot", self.node)[:32],
                "kernelVersion": "canopy-test",
                "osImage": "canopy test kubelet",
                "containerRuntimeVersion": "canopy-test://0",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION,
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }

    def register(self) -> None:
        """Creates the Node (if missing), reports it Ready and creates its Lease."""
        labels = {"kubernetes.io/hostname": self.node, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
        try:
            self.api.request(
                "POST",
                "/api/v1/nodes",
                {"apiVersion": "v1", "kind": "Node", "metadata": {"name": self.node, "labels": labels}},
            )
        except ApiError as e:
            if e.status != 409:
                raise
        self.heartbeat(self.api)

    def heartbeat(self, api: Api) -> None:
        """Renews the NodeStatus and the node Lease."""
        api.request(
            "PATCH", f"/api/v1/nodes/{self.node}/status", {"status": self.node_status()}, "application/merge-patch+json"
        )
        lease_path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.node}"
        spec = {"holderIdentity": self.node, "leaseDurationSeconds": 40, "renewTime": now_micro()}
        try:
            api.request("PATCH", lease_path, {"spec": spec}, "application/merge-patch+json")
        except ApiError as e:
            if e.status != 404:
                raise
            api.request(
                "POST",
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": self.node, "namespace": "kube-node-lease"},
                    "spec": spec,
                },
            )

    def heartbeats(self) -> None:
        """Thread body: heartbeats every HEARTBEAT_SECONDS until stopped."""
        api = Api(*self.args)
        while not self.stopping.wait(HEARTBEAT_SECONDS):
            try:
                self.heartbeat(api)
            except (ApiError, OSError, http.client.HTTPException) as e:
                print(f"test kubelet: heartbeat failed: {e}", file=sys.stderr, flush=True)

    # --- pods -----------------------------------------------------------------------------------------------
    def pod_ip(self, uid: str) -> str:
        """The Pod's IP, 10.244.x.y, never reused by this kubelet (its loopback twin is where a process listens)."""
        if uid not in self.ips:
            self.ip_count += 1
            n = self.ip_count
            self.ips[uid] = f"10.244.{n // 250 % 250}.{n % 250 + 2}"
        return self.ips[uid]

    def new_api(self) -> Api:
        """A new API client (one per thread)."""
        return Api(*self.args)

    def finish_deletion(self, process: PodProcess | None, grace: float, path: str, uid: str) -> None:
        """Stops the Pod's process (if any) within its grace period, then deletes the Pod for good."""
        api = self.api
        if process is not None:
            process.stop(grace)
            api = self.new_api()
        try:
            body = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0, "preconditions": {"uid": uid}}
            api.request("DELETE", path, body)
        except ApiError as e:
            if e.status not in (404, 409):
                print(f"test kubelet: delete {path}: {e}", file=sys.stderr, flush=True)

    def kill_processes(self, *_: object) -> None:
        """SIGKILLs every Pod process and exits (on SIGTERM/SIGINT)."""
        for process in list(self.processes.values()):
            process.kill()
        sys.exit(0)

    def handle(self, kind: str, pod: JSON) -> None:
        """Acts on one watch event of a Pod."""
        meta, spec = pod["metadata"], pod["spec"]
        ns, name, uid = meta["namespace"], meta["name"], meta["uid"]
        path = f"/api/v1/namespaces/{quote(ns)}/pods/{quote(name)}"
        if kind == "DELETED":
            for cache in (self.reported, self.ips, self.started):
                cache.pop(uid, None)
            self.deleting.discard(uid)
            if uid in self.processes:
                threading.Thread(target=self.processes.pop(uid).stop, args=(0,), daemon=True).start()
            return
        node = spec.get("nodeName")
        if meta.get("deletionTimestamp"):
            if node == self.node and uid not in self.deleting:
                process = self.processes.pop(uid, None)
                if process is None:
                    self.finish_deletion(None, 0, path, uid)
                else:
                    self.deleting.add(uid)
                    grace = float(meta.get("deletionGracePeriodSeconds", spec.get("terminationGracePeriodSeconds", 30)))
                    args = (process, grace, path, uid)
                    threading.Thread(target=self.finish_deletion, args=args, daemon=True).start()
            return
        if not node:
            if spec.get("schedulerName", "default-scheduler") == "default-scheduler":
                self.api.request(
                    "POST",
                    f"{path}/binding",
                    {
                        "apiVersion": "v1",
                        "kind": "Binding",
                        "metadata": {"name": name, "uid": uid},
                        "target": {"apiVersion": "v1", "kind": "Node", "name": self.node},
                    },
                )
            return
        if node != self.node:
            return
        entry = process_entry(pod, self.images)
        if uid in self.processes or entry is not None:
            if uid not in self.processes and entry is not None and not terminal(pod):
                self.processes[uid] = PodProcess(self.new_api, pod, entry, self.pod_ip(uid), self.work_dir)
                self.processes[uid].start()
            return
        mode = pod_mode(pod)
        images = ",".join(c.get("image", "") for c in spec["containers"])
        fingerprint = f"{mode}|{images}"
        want_phase = {"run": "Running", "fail": "Running", "succeed": "Succeeded", "pending": "Pending"}[mode]
        if self.reported.get(uid) == fingerprint and pod.get("status", {}).get("phase") == want_phase:
            return
        if terminal(pod):
            return
        started_at = self.started.setdefault(uid, now())
        status = pod_status(pod, mode, self.pod_ip(uid), started_at)
        self.api.request(
            "PATCH", f"{path}/status", {"metadata": {"uid": uid}, "status": status}, "application/merge-patch+json"
        )
        self.reported[uid] = fingerprint

    def run(self) -> None:
        """Registers, then lists and watches all Pods until killed."""
        self.register()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self.kill_processes)
        threading.Thread(target=self.heartbeats, name="heartbeats", daemon=True).start()
        print(f"test kubelet: node {self.node} registered", file=sys.stderr, flush=True)
        while True:
            try:
                listing = self.api.request("GET", "/api/v1/pods")
                for pod in listing["items"]:
                    self.safe_handle("ADDED", pod)
                version = listing["metadata"]["resourceVersion"]
                while True:
                    params = {
                        "resourceVersion": version,
                        "allowWatchBookmarks": "true",
                        "timeoutSeconds": str(int(HEARTBEAT_SECONDS * 25)),
                    }
                    for event in self.api.watch("/api/v1/pods", params):
                        obj = event["object"]
                        if event["type"] == "ERROR":
                            raise ApiError(obj.get("code", 500), obj.get("message", ""))
                        version = obj["metadata"]["resourceVersion"]
                        if event["type"] != "BOOKMARK":
                            self.safe_handle(event["type"], obj)
            except (ApiError, OSError, http.client.HTTPException, ValueError) as e:
                print(f"test kubelet: relisting after {e}", file=sys.stderr, flush=True)
                time.sleep(0.5)

    def safe_handle(self, kind: str, pod: JSON) -> None:
        """handle(), logging and forgetting API errors (a later event retries)."""
        try:
            self.handle(kind, pod)
        except ApiError as e:
            if e.status not in (404, 409):
                name = f"{pod['metadata'].get('namespace')}/{pod['metadata'].get('name')}"
                print(f"test kubelet: {kind} {name}: {e}", file=sys.stderr, flush=True)
            self.reported.pop(pod["metadata"].get("uid", ""), None)


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--server", required=True)
    parser.add_argument("--ca-file", required=True)
    parser.add_argument("--token-file", required=True)
    parser.add_argument("--node", default="canopy-test-node")
    parser.add_argument("--process-images", help="JSON map of the images run as local processes (process mode)")
    parser.add_argument("--work-dir", default=".", help="where process-mode Pods get their directories and logs")
    args = parser.parse_args(argv)
    with open(args.token_file) as f:
        token = f.read().strip()
    images = load_process_images(args.process_images) if args.process_images else {}
    Kubelet(args.server, args.ca_file, token, args.node, images, Path(args.work_dir)).run()


if __name__ == "__main__":
    main()
