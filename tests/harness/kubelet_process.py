"""Process mode of the test kubelet: a Pod whose one container's image is in the kubelet's process-image map runs
as a local process, and its status follows that process and its real readiness probe.

The map (``--process-images FILE``) is JSON: ``{"<image>": {"argv": [...], "env": {...}}}``. The process gets a
small base environment (PATH, HOME, LANG), the Pod's (``envFrom`` Secrets and ConfigMaps, ``env`` values and
key references, read through the API), the entry's ``env``, then ``WS_LISTEN_HOST``/``WS_LISTEN_PORT`` (the Pod's
loopback address and its first containerPort) and per-Pod ``WS_RUNTIME_DIR``/``WS_FILES_DIR`` under the kubelet's
work directory, where its output goes too (``pods/<namespace>_<name>_<uid>/container.log``).

Pod network: the endpoints controller refuses loopback addresses, so a Pod's IP stays ``10.A.B.C`` and its process
listens on the loopback twin ``127.A.B.C`` (:func:`loopback_twin`; Linux routes all of 127/8 to ``lo``). Whoever
dials a Pod IP on the harness (the readiness probe, the stand-in ingress) dials its twin.

Readiness runs the container's ``readinessProbe`` (``httpGet`` only; the period capped to 1 s, the initial delay
ignored; failureThreshold and successThreshold honoured). Liveness probes are not run. An exit restarts the process
per restartPolicy with ``restartCount`` + 1, after a short CrashLoopBackOff (0.5 s doubling to 5 s). Stopping sends
SIGTERM to the process group, then SIGKILL after the grace period. Stdlib only: the kubelet imports it as a script.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import http.client
import json
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

JSON = dict[str, Any]
PROBE_PERIOD_CAP = 1.0
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 5.0
BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")


class Api(Protocol):
    """What process mode needs of the kubelet's API client."""

    def request(
        self, method: str, path: str, body: JSON | None = None, content_type: str = "application/json"
    ) -> JSON: ...


def loopback_twin(pod_ip: str) -> str:
    """Where a process-mode Pod with IP ``10.A.B.C`` listens: ``127.A.B.C``."""
    head, _, rest = pod_ip.partition(".")
    if head != "10":
        raise ValueError(f"not a test kubelet Pod IP: {pod_ip}")
    return f"127.{rest}"


def load_process_images(path: str) -> dict[str, JSON]:
    """The process-image map of ``path``, checked: each entry an ``argv`` list and an optional ``env`` mapping."""
    with open(path) as f:
        images = json.load(f)
    for image, entry in images.items():
        if not (isinstance(entry.get("argv"), list) and entry["argv"] and isinstance(entry.get("env", {}), dict)):
            raise ValueError(f"process image {image!r}: want {{'argv': [...], 'env': {{...}}}}")
    return dict(images)


def process_entry(pod: JSON, images: dict[str, JSON]) -> JSON | None:
    """The map's entry for the Pod when it has one container whose image is in the map (and is not ``:broken``)."""
    containers = pod["spec"].get("containers", [])
    if len(containers) != 1 or ":broken" in containers[0].get("image", ""):
        return None
    return images.get(containers[0].get("image", ""))


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """SIGKILL when the forking thread's process dies (PR_SET_PDEATHSIG); the runner thread outlives its process."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


def resolve_env(api: Api, pod: JSON) -> dict[str, str]:
    """The container's environment as a kubelet builds it: ``envFrom`` first, then ``env`` (later wins)."""
    ns = pod["metadata"]["namespace"]
    container = pod["spec"]["containers"][0]
    cache: dict[tuple[str, str], dict[str, str]] = {}

    def source(kind: str, name: str) -> dict[str, str]:
        if (kind, name) not in cache:
            plural = "secrets" if kind == "Secret" else "configmaps"
            obj = api.request("GET", f"/api/v1/namespaces/{quote(ns)}/{plural}/{quote(name)}")
            data = obj.get("data") or {}
            if kind == "Secret":
                data = {k: base64.b64decode(v).decode() for k, v in data.items()}
            cache[(kind, name)] = data
        return cache[(kind, name)]

    env: dict[str, str] = {}
    for item in container.get("envFrom", []):
        prefix = item.get("prefix", "")
        if "secretRef" in item:
            env |= {prefix + k: v for k, v in source("Secret", item["secretRef"]["name"]).items()}
        elif "configMapRef" in item:
            env |= {prefix + k: v for k, v in source("ConfigMap", item["configMapRef"]["name"]).items()}
    fields = {"metadata.name": pod["metadata"]["name"], "metadata.namespace": ns, "spec.nodeName": "test-node"}
    for var in container.get("env", []):
        ref = var.get("valueFrom") or {}
        if "secretKeyRef" in ref:
            env[var["name"]] = source("Secret", ref["secretKeyRef"]["name"]).get(ref["secretKeyRef"]["key"], "")
        elif "configMapKeyRef" in ref:
            key_ref = ref["configMapKeyRef"]
            env[var["name"]] = source("ConfigMap", key_ref["name"]).get(key_ref["key"], "")
        elif "fieldRef" in ref:
            env[var["name"]] = fields.get(ref["fieldRef"].get("fieldPath", ""), "")
        else:
            env[var["name"]] = var.get("value", "")
    return env


def probe_target(container: JSON) -> tuple[str, int] | None:
    """(path, port) of the container's httpGet readiness probe, or None without one."""
    get = (container.get("readinessProbe") or {}).get("httpGet")
    if not get:
        return None
    port = get.get("port")
    if isinstance(port, str) and not port.isdigit():
        port = next(p["containerPort"] for p in container.get("ports", []) if p.get("name") == port)
    return str(get.get("path", "/")), int(port)


def http_probe(host: str, port: int, path: str, timeout: float) -> bool:
    """A kubelet httpGet probe: success is a status from 200 to 399."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"User-Agent": "kube-probe/1.20"})
        return 200 <= conn.getresponse().status < 400
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


class PodProcess:
    """Runs one Pod's container as a process on a thread of its own, reporting its status to the API."""

    def __init__(self, api: Callable[[], Api], pod: JSON, entry: JSON, pod_ip: str, work_dir: Path) -> None:
        meta = pod["metadata"]
        self.pod, self.entry, self.pod_ip = pod, entry, pod_ip
        self.container = pod["spec"]["containers"][0]
        self.path = f"/api/v1/namespaces/{quote(meta['namespace'])}/pods/{quote(meta['name'])}"
        self.dir = work_dir / "pods" / f"{meta['namespace']}_{meta['name']}_{meta['uid']}"
        self.new_api = api
        self.stopping = threading.Event()
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = _now()
        self.state: JSON = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state: JSON = {}
        self.restarts = 0
        self.ready = False
        self.phase = "Pending"
        self.reported = ""
        self.thread = threading.Thread(target=self._run, name=f"pod-{meta['name']}", daemon=True)

    # --- control --------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Starts the Pod's thread (it starts the process)."""
        self.thread.start()

    def stop(self, grace: float) -> None:
        """SIGTERM to the process group, SIGKILL after ``grace`` seconds; returns once the thread is done."""
        self.stopping.set()
        proc = self.proc
        if proc is not None and proc.poll() is None:
            self._signal(proc, signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                self._signal(proc, signal.SIGKILL)
                proc.wait()
        self.thread.join(grace + 10)

    def kill(self) -> None:
        """SIGKILL to the process group at once (the kubelet is exiting)."""
        self.stopping.set()
        if self.proc is not None and self.proc.poll() is None:
            self._signal(self.proc, signal.SIGKILL)

    @staticmethod
    def _signal(proc: subprocess.Popen[bytes], sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)

    # --- thread ---------------------------------------------------------------------------------------------
    def _run(self) -> None:
        api = self.new_api()
        try:
            env = self._environment(api)
        except Exception as e:  # a missing Secret/ConfigMap: the real kubelet waits in CreateContainerConfigError
            self.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(e)[:200]}}
            self._report(api)
            return
        backoff = BACKOFF_FIRST
        while not self.stopping.is_set():
            code = self._run_once(api, env)
            if self.stopping.is_set():
                return
            policy = self.pod["spec"].get("restartPolicy", "Always")
            if policy == "Never" or (policy == "OnFailure" and code == 0):
                self.phase = "Succeeded" if code == 0 else "Failed"
                self._report(api)
                return
            self.restarts += 1
            self.state = {"waiting": {"reason": "CrashLoopBackOff", "message": f"back-off {backoff:g}s"}}
            self._report(api)
            self.stopping.wait(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    def _environment(self, api: Api) -> dict[str, str]:
        run_dir, files_dir = self.dir / "run", self.dir / "files"
        for d in (run_dir, files_dir):
            d.mkdir(parents=True, exist_ok=True)
        env = {k: os.environ[k] for k in BASE_ENV if k in os.environ}
        env |= resolve_env(api, self.pod) | self.entry.get("env", {})
        env |= {"WS_LISTEN_HOST": loopback_twin(self.pod_ip), "WS_RUNTIME_DIR": str(run_dir)}
        env["WS_FILES_DIR"] = str(files_dir)
        ports = self.container.get("ports", [])
        if ports:
            env["WS_LISTEN_PORT"] = str(ports[0]["containerPort"])
        return env

    def _run_once(self, api: Api, env: dict[str, str]) -> int:
        """Runs the process to its end (probing it meanwhile); its exit code (128: it could not start)."""
        started = _now()
        self.proc = self._spawn(env)
        if self.proc is not None:
            self.phase, self.ready = "Running", False
            self.state = {"running": {"startedAt": started}}
            self._report(api)
            self._probe_until_exit(api, self.proc)
        code = self.proc.wait() if self.proc is not None else 128
        code = 128 - code if code < 0 else code  # killed by a signal: 128 + its number, as container runtimes say
        self.ready = False
        reason = {0: "Completed", 128: "StartError"}.get(code, "Error")
        terminated = {"exitCode": code, "reason": reason, "startedAt": started, "finishedAt": _now()}
        self.state = self.last_state = {"terminated": terminated}
        return code

    def _spawn(self, env: dict[str, str]) -> subprocess.Popen[bytes] | None:
        """The started process, in a session of its own, output to the Pod's log; None when it cannot start."""
        with open(self.dir / "container.log", "ab") as log:
            try:
                return subprocess.Popen(
                    self.entry["argv"],
                    env=env,
                    cwd=self.dir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
            except OSError as e:  # argv[0] missing or not executable: a container that cannot start
                log.write(f"test kubelet: cannot start {self.entry['argv'][0]}: {e}\n".encode())
                return None

    def _probe_until_exit(self, api: Api, proc: subprocess.Popen[bytes]) -> None:
        probe = self.container.get("readinessProbe") or {}
        target = probe_target(self.container)
        period = min(float(probe.get("periodSeconds", 10)), PROBE_PERIOD_CAP)
        failures_needed, successes_needed = probe.get("failureThreshold", 3), probe.get("successThreshold", 1)
        failures = successes = 0
        host = loopback_twin(self.pod_ip)
        while proc.poll() is None and not self.stopping.is_set():
            ok = target is None or http_probe(host, target[1], target[0], float(probe.get("timeoutSeconds", 1)))
            successes, failures = (successes + 1, 0) if ok else (0, failures + 1)
            if not self.ready and successes >= successes_needed:
                self.ready = True
            elif self.ready and failures >= failures_needed:
                self.ready = False
            self._report(api)
            self.stopping.wait(period)

    # --- status ---------------------------------------------------------------------------------------------
    def _report(self, api: Api) -> None:
        """PATCHes the Pod's status when it changed since the last report (API errors are logged and retried)."""
        status = self.status()
        fingerprint = json.dumps([status["phase"], self.ready, self.restarts, self.state])
        if fingerprint == self.reported or self.stopping.is_set():
            return
        body = {"metadata": {"uid": self.pod["metadata"]["uid"]}, "status": status}
        try:
            api.request("PATCH", f"{self.path}/status", body, "application/merge-patch+json")
        except Exception as e:  # the next change (or probe) reports again
            print(f"test kubelet: {self.path}: status: {e}", flush=True)
            return
        self.reported = fingerprint

    def status(self) -> JSON:
        """The Pod status for the process as it is now."""
        image = self.container.get("image", "")
        running = "running" in self.state
        container: JSON = {
            "name": self.container["name"],
            "image": image,
            "imageID": f"canopy-test://{image}",
            "containerID": f"canopy-test://process/{self.pod['metadata']['uid']}",
            "restartCount": self.restarts,
            "ready": self.ready,
            "started": running,
            "state": self.state,
            "lastState": self.last_state,
        }

        def condition(kind: str, ok: bool) -> JSON:
            cond: JSON = {"type": kind, "status": "True" if ok else "False", "lastProbeTime": None}
            cond["lastTransitionTime"] = self.started_at
            if not ok:
                cond["reason"] = "ContainersNotReady"
            return cond

        return {
            "phase": self.phase,
            "conditions": [
                condition("Initialized", True),
                condition("Ready", self.ready),
                condition("ContainersReady", self.ready),
                condition("PodScheduled", True),
            ],
            "hostIP": "127.0.0.1",
            "podIP": self.pod_ip,
            "podIPs": [{"ip": self.pod_ip}],
            "startTime": self.started_at,
            "qosClass": "BestEffort",
            "containerStatuses": [container],
        }
