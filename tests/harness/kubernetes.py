"""A real, throwaway Kubernetes control plane for tests: etcd, kube-apiserver, kube-controller-manager
(Kubernetes v1.20.2 built from Debian's source package by build_kubernetes.sh) and the test kubelet,
all on 127.0.0.1 free ports, in a temporary directory removed on exit.

    with TestCluster() as cluster:
        core = kubernetes.client.CoreV1Api(cluster.api_client())
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import kubernetes.client
import kubernetes.config
import kubernetes.dynamic
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HARNESS_DIR = Path(__file__).resolve().parent
BUILD_SCRIPT = HARNESS_DIR / "build_kubernetes.sh"
KUBELET_SCRIPT = HARNESS_DIR / "test_kubelet.py"
KUBE_DEB_VERSION = "1.20.5+really1.20.2"
ADMIN_USER = "canopy-admin"
NODE_NAME = "canopy-test-node"
SERVICE_CIDR = "10.0.0.0/20"  # room for a fleet of a few thousand workspaces' Services


class ClusterError(RuntimeError):
    """The test cluster could not be built or started."""


def default_bin_dir() -> Path:
    """Where build_kubernetes.sh caches kube-apiserver and kube-controller-manager."""
    cache = os.environ.get("CANOPY_CACHE_DIR") or str(Path.home() / ".cache" / "canopy")
    return Path(cache) / "kubernetes" / KUBE_DEB_VERSION / "bin"


def binaries_present(bin_dir: Path) -> bool:
    """True when both control plane binaries are in bin_dir and etcd is installed."""
    wanted = [bin_dir / "kube-apiserver", bin_dir / "kube-controller-manager"]
    return all(os.access(p, os.X_OK) for p in wanted) and shutil.which("etcd") is not None


def build_binaries(log: Callable[[str], None] = print) -> Path:
    """Runs build_kubernetes.sh (a no-op when cached) and returns the bin directory; raises ClusterError."""
    started = time.monotonic()
    proc = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ClusterError(
            f"{BUILD_SCRIPT.name} failed (exit {proc.returncode}) after {time.monotonic() - started:.0f}s:\n"
            + "\n".join((proc.stderr + proc.stdout).splitlines()[-30:])
        )
    bin_dir = Path(proc.stdout.strip().splitlines()[-1])
    if proc.stderr.strip():
        log(proc.stderr.strip())
    return bin_dir


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Asks Linux to kill this child when the test process dies (PR_SET_PDEATHSIG)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


def _sweep_stale(parent: Path, prefix: str) -> None:
    """Removes directories left by test processes that died without stopping their cluster."""
    for d in parent.glob(f"{prefix}*"):
        try:
            pid = int((d / "owner.pid").read_text())
            alive = Path(f"/proc/{pid}").exists()
        except (OSError, ValueError):
            alive = time.time() - d.stat().st_mtime < 3600 if d.exists() else True
        if not alive:
            shutil.rmtree(d, ignore_errors=True)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)


def make_pki(directory: Path) -> None:
    """Writes ca.{crt,key}, a serving cert apiserver.{crt,key} for 127.0.0.1/localhost and sa.{key,pub}."""
    import ipaddress

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "canopy-test-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.DNSName("kubernetes"),
        x509.DNSName("kubernetes.default"),
        x509.DNSName("kubernetes.default.svc"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(directory / "ca.key", ca_key)
    (directory / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    _write_key(directory / "apiserver.key", key)
    (directory / "apiserver.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    sa_key = ec.generate_private_key(ec.SECP256R1())
    _write_key(directory / "sa.key", sa_key)
    (directory / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


class TestCluster:
    """etcd + kube-apiserver + kube-controller-manager + test kubelet on loopback; a context manager.

    Attributes once started: ``server`` (https URL), ``token`` (admin bearer token, group system:masters),
    ``ca_file``, ``kubeconfig`` (file path), ``node_name``, ``workdir`` (logs in ``workdir/logs``).

    ``process_images`` (``{image: {"argv": [...], "env": {...}}}``) turns on the kubelet's process mode for those
    images (``kubelet_process.py``): their Pods run as local processes under ``workdir/kubelet/pods``.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        bin_dir: Path | None = None,
        *,
        etcd: str | None = None,
        keep: bool = False,
        start_timeout: float = 90.0,
        process_images: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.bin_dir = bin_dir or default_bin_dir()
        self.process_images = dict(process_images or {})
        self.etcd = etcd or shutil.which("etcd") or "/usr/bin/etcd"
        self.keep = keep or os.environ.get("CANOPY_KUBE_KEEP") == "1"
        self.start_timeout = start_timeout
        self.node_name = NODE_NAME
        self.token = secrets.token_hex(24)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.workdir = Path()
        self.etcd_dir = Path()
        self.server = ""
        self.ca_file = Path()
        self.kubeconfig = Path()
        self.startup_seconds = 0.0
        self.timings: dict[str, float] = {}  # seconds from start() to each readiness step
        self._t0 = 0.0
        self._log_files: list[IO[bytes]] = []

    # --- lifecycle ------------------------------------------------------------------------------------------
    def __enter__(self) -> TestCluster:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Starts all processes and waits until the API is ready, the node Ready and the controllers running."""
        self._t0 = t0 = time.monotonic()
        for name in ("kube-apiserver", "kube-controller-manager"):
            if not os.access(self.bin_dir / name, os.X_OK):
                raise ClusterError(f"{self.bin_dir / name} missing: run tests/harness/build_kubernetes.sh")
        shm = Path("/dev/shm")
        on_tmpfs = shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 1 << 30
        _sweep_stale(Path(tempfile.gettempdir()), "canopy-kube-")
        if on_tmpfs:
            _sweep_stale(shm, "canopy-etcd-")
        self.workdir = Path(tempfile.mkdtemp(prefix="canopy-kube-"))
        # etcd 3.4 has no --unsafe-no-fsync: tmpfs makes its fsyncs free.
        self.etcd_dir = Path(tempfile.mkdtemp(prefix="canopy-etcd-", dir=shm if on_tmpfs else self.workdir))
        for d in (self.workdir, self.etcd_dir):
            (d / "owner.pid").write_text(str(os.getpid()))
        (self.workdir / "logs").mkdir()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0

    def _start(self) -> None:
        d = self.workdir
        make_pki(d)
        self.ca_file = d / "ca.crt"
        (d / "tokens.csv").write_text(f'{self.token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n')
        (d / "token").write_text(self.token)
        etcd_client, etcd_peer, api_port = free_port(), free_port(), free_port()
        self.server = f"https://127.0.0.1:{api_port}"
        self._write_kubeconfig()

        self._spawn(
            "etcd",
            [
                self.etcd,
                "--name=canopy",
                f"--data-dir={self.etcd_dir / 'data'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_client}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_client}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-cluster=canopy=http://127.0.0.1:{etcd_peer}",
                "--initial-cluster-state=new",
                "--logger=zap",
                "--log-outputs=stderr",
                "--log-level=warn",
            ],
        )
        self._spawn(
            "kube-apiserver",
            [
                str(self.bin_dir / "kube-apiserver"),
                "--advertise-address=127.0.0.1",
                "--bind-address=127.0.0.1",
                f"--secure-port={api_port}",
                "--insecure-port=0",
                f"--cert-dir={d}",
                f"--tls-cert-file={d / 'apiserver.crt'}",
                f"--tls-private-key-file={d / 'apiserver.key'}",
                f"--client-ca-file={d / 'ca.crt'}",
                f"--token-auth-file={d / 'tokens.csv'}",
                "--authorization-mode=Node,RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={d / 'sa.pub'}",
                f"--service-account-signing-key-file={d / 'sa.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                f"--etcd-servers=http://127.0.0.1:{etcd_client}",
                "--enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,DefaultStorageClass,"
                "DefaultTolerationSeconds,DefaultIngressClass,ResourceQuota,Priority,TaintNodesByCondition,"
                "MutatingAdmissionWebhook,ValidatingAdmissionWebhook",
                "--endpoint-reconciler-type=none",
                "--allow-privileged=true",
                "--profiling=false",
                "--v=1",
            ],
        )
        self._wait("kube-apiserver /readyz", self._api_ready)

        self._spawn(
            "kube-controller-manager",
            [
                str(self.bin_dir / "kube-controller-manager"),
                f"--kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--use-service-account-credentials=false",
                f"--root-ca-file={d / 'ca.crt'}",
                f"--service-account-private-key-file={d / 'sa.key'}",
                f"--cluster-signing-cert-file={d / 'ca.crt'}",
                f"--cluster-signing-key-file={d / 'ca.key'}",
                "--controllers=*",
                "--cluster-name=canopy-test",
                "--port=0",
                "--secure-port=0",
                "--bind-address=127.0.0.1",
                f"--flex-volume-plugin-dir={d / 'flexvolume'}",
                "--profiling=false",
                "--kube-api-qps=500",
                "--kube-api-burst=1000",
                "--v=1",
            ],
        )
        kubelet = [
            sys.executable,
            str(KUBELET_SCRIPT),
            f"--server={self.server}",
            f"--ca-file={self.ca_file}",
            f"--token-file={d / 'token'}",
            f"--node={self.node_name}",
        ]
        if self.process_images:
            (d / "process-images.json").write_text(json.dumps(self.process_images))
            (d / "kubelet").mkdir()
            kubelet += [f"--process-images={d / 'process-images.json'}", f"--work-dir={d / 'kubelet'}"]
        self._spawn("test-kubelet", kubelet)
        self._wait("node Ready", self._node_ready)
        self._wait("default service account token", self._default_token_ready)

    def stop(self) -> None:
        """Stops all processes (kubelet first) and removes the temporary directories unless ``keep``."""
        procs = list(reversed(self.procs.values()))
        for p in procs:
            if p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + 10
        for p in procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs.clear()
        for f in self._log_files:
            f.close()
        self._log_files.clear()
        if not self.keep:
            for path in (self.etcd_dir, self.workdir):
                if path != Path():
                    shutil.rmtree(path, ignore_errors=True)

    # --- clients --------------------------------------------------------------------------------------------
    def api_client(self) -> kubernetes.client.ApiClient:
        """A new ApiClient for the admin user, configured from ``kubeconfig``."""
        client: kubernetes.client.ApiClient = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(self.kubeconfig)
        )
        return client

    def dynamic_client(self) -> kubernetes.dynamic.DynamicClient:
        """A DynamicClient (discovery-driven, has ``server_side_apply``) over a new ApiClient."""
        cache = self.workdir / "discovery-cache.json"  # not /tmp: the port changes every session
        return kubernetes.dynamic.DynamicClient(self.api_client(), cache_file=str(cache))  # type: ignore[no-untyped-call]

    def rss_bytes(self) -> dict[str, int]:
        """Resident memory of each running process, in bytes."""
        out = {}
        for name, p in self.procs.items():
            with contextlib.suppress(OSError), open(f"/proc/{p.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        out[name] = int(line.split()[1]) * 1024
        return out

    def log_tail(self, name: str, lines: int = 30) -> str:
        """The last lines of a process's log (etcd, kube-apiserver, kube-controller-manager, test-kubelet)."""
        path = self.workdir / "logs" / f"{name}.log"
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # --- internals ------------------------------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.workdir / "logs" / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop()
        self._log_files.append(log)
        self.procs[name] = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            preexec_fn=_die_with_parent,
        )

    def _wait(self, what: str, check: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            for name, p in self.procs.items():
                if p.poll() is not None:
                    raise ClusterError(
                        f"{name} exited with {p.returncode} while waiting for {what}:\n" + self.log_tail(name)
                    )
            try:
                if check():
                    self.timings[what] = round(time.monotonic() - self._t0, 2)
                    return
            except (OSError, ValueError, kubernetes.client.ApiException):
                pass
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {n}\n{self.log_tail(n, 15)}" for n in self.procs)
                raise ClusterError(f"timed out after {self.start_timeout:.0f}s waiting for {what}\n{tails}")
            time.sleep(0.1)

    def _get(self, path: str) -> tuple[int, bytes]:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        req = urllib.request.Request(self.server + path, headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=5) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def _api_ready(self) -> bool:
        return self._get("/readyz")[0] == 200

    def _node_ready(self) -> bool:
        status, body = self._get(f"/api/v1/nodes/{self.node_name}")
        if status != 200:
            return False
        conditions = json.loads(body).get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def _default_token_ready(self) -> bool:
        status, body = self._get("/api/v1/namespaces/default/serviceaccounts/default")
        return status == 200 and bool(json.loads(body).get("secrets"))

    def _write_kubeconfig(self) -> None:
        self.kubeconfig = self.workdir / "kubeconfig"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "canopy-test",
            "clusters": [
                {"name": "canopy-test", "cluster": {"server": self.server, "certificate-authority": str(self.ca_file)}}
            ],
            "users": [{"name": ADMIN_USER, "user": {"token": self.token}}],
            "contexts": [{"name": "canopy-test", "context": {"cluster": "canopy-test", "user": ADMIN_USER}}],
        }
        self.kubeconfig.write_text(json.dumps(config, indent=2))  # JSON is YAML
        self.kubeconfig.chmod(0o600)
