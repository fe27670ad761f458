"""A stand-in for an ingress controller, DNS and TLS on the test harness: an HTTP forward proxy on 127.0.0.1.

Processes reach it through the standard proxy environment (:meth:`StandInIngress.env`: ``HTTPS_PROXY``,
``HTTP_PROXY``, ``NO_PROXY`` for loopback, ``SSL_CERT_FILE`` = its test CA; httpx honours them all). For
``CONNECT <host>:443`` it terminates TLS with a certificate for ``host`` signed by that CA; plain ``http://`` proxy
requests are served too. Each request is routed by its Host: the Ingress (any namespace and class) with a rule for
that host, its backend Service, the Service's Endpoints' ready addresses, and the request goes to that address's
loopback twin (the test kubelet's process mode listens there, see ``kubelet_process.py``) on the Endpoints' port,
as HTTP/1.1 with the response streamed back. No matching Ingress: 404; no ready endpoint: 503; the endpoint does
not answer: 502.

Lookups are cached for :data:`CACHE_SECONDS` and looked up again at once when they fail (a new Ingress, the Pods of
a rollout). Not done: WebSocket upgrades, ingress-nginx annotations (rewrites, upstream-vhost), ExternalName
backends (a sleeping workspace's wake route answers 503), paths other than the rule's first, TLS sections.
"""

from __future__ import annotations

import datetime
import http.client
import http.server
import socketserver
import ssl
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from control_plane.kube.client import KubeApiError, KubeClient
from tests.harness.kubelet_process import loopback_twin

CACHE_SECONDS = 1.0
BACKEND_TIMEOUT = 30.0
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}
JSON = dict[str, Any]


class Certificates:
    """A test CA (``ca_file``) and, per host, a TLS server context with a certificate it signed."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "canopy test ingress CA")])
        now = datetime.datetime.now(datetime.UTC)
        self.ca = (
            x509.CertificateBuilder()
            .subject_name(self.ca_name)
            .issuer_name(self.ca_name)
            .public_key(self.ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.ca_key.public_key()), critical=False)
            .sign(self.ca_key, hashes.SHA256())
        )
        self.ca_file = self.dir / "ca.crt"
        self.ca_file.write_bytes(self.ca.public_bytes(serialization.Encoding.PEM))
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._lock = threading.Lock()

    def context(self, host: str) -> ssl.SSLContext:
        """The server context for ``host`` (made on first use)."""
        with self._lock:
            if host not in self._contexts:
                self._contexts[host] = self._make(host)
            return self._contexts[host]

    def _make(self, host: str) -> ssl.SSLContext:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(self.ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()), critical=False)
            .sign(self.ca_key, hashes.SHA256())
        )
        cert_file, key_file = self.dir / f"{host}.crt", self.dir / f"{host}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        return context


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        encipher_only=False,
        decipher_only=False,
    )


class Routes:
    """Host -> backend address, from Ingresses, Services and Endpoints (short caches, refreshed on a miss)."""

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube
        self.version = "networking.k8s.io/v1"
        if "v1" not in kube.served_versions("networking.k8s.io"):
            self.version = "networking.k8s.io/v1beta1"
        self._hosts: dict[str, tuple[str, str, str | int]] = {}
        self._hosts_at = 0.0
        self._endpoints: dict[tuple[str, str, str | int], tuple[float, list[tuple[str, int]]]] = {}
        self._lock = threading.Lock()

    def backends(self, host: str, fresh: bool = False) -> list[tuple[str, int]] | int:
        """The ready (address, port) pairs serving ``host``, or 404 (no Ingress) / 503 (none ready)."""
        service = self._service(host, fresh)
        if service is None:
            return 404
        key = service
        with self._lock:
            cached = self._endpoints.get(key)
        if fresh or cached is None or time.monotonic() - cached[0] > CACHE_SECONDS or not cached[1]:
            cached = (time.monotonic(), self._ready(*service))
            with self._lock:
                self._endpoints[key] = cached
        return cached[1] or 503

    def _service(self, host: str, fresh: bool) -> tuple[str, str, str | int] | None:
        with self._lock:
            stale = fresh or time.monotonic() - self._hosts_at > CACHE_SECONDS or host not in self._hosts
        if stale:
            hosts = self._ingress_hosts()
            with self._lock:
                self._hosts, self._hosts_at = hosts, time.monotonic()
        with self._lock:
            return self._hosts.get(host)

    def _ingress_hosts(self) -> dict[str, tuple[str, str, str | int]]:
        hosts: dict[str, tuple[str, str, str | int]] = {}
        for ingress in self.kube.list_kind(self.version, "Ingress"):
            ns = ingress["metadata"]["namespace"]
            for rule in ingress.get("spec", {}).get("rules") or []:
                paths = (rule.get("http") or {}).get("paths") or []
                if rule.get("host") and paths:
                    hosts[rule["host"].lower()] = (ns, *_backend(paths[0]["backend"]))
        return hosts

    def _ready(self, namespace: str, service: str, port: str | int) -> list[tuple[str, int]]:
        """The ready addresses of the Service's Endpoints on the Service port ``port`` (its name or number)."""
        try:
            svc = self.kube.get("v1", "Service", service, namespace)
            endpoints = self.kube.get("v1", "Endpoints", service, namespace)
        except KubeApiError:
            return []
        if svc is None or endpoints is None:
            return []
        svc_port = next((p for p in svc["spec"].get("ports", []) if port in (p.get("name"), p.get("port"))), None)
        if svc_port is None:
            return []
        found = []
        for subset in endpoints.get("subsets") or []:
            target = next((p["port"] for p in subset.get("ports", []) if p.get("name") == svc_port.get("name")), None)
            if target is not None:
                found += [(loopback_twin(a["ip"]), int(target)) for a in subset.get("addresses") or []]
        return found


def _backend(backend: JSON) -> tuple[str, str | int]:
    """(service name, port name or number) of a v1 or v1beta1 Ingress backend."""
    if "service" in backend:
        port = backend["service"].get("port") or {}
        return backend["service"]["name"], port.get("name") or int(port.get("number", 80))
    return backend["serviceName"], backend["servicePort"]


class _Handler(http.server.BaseHTTPRequestHandler):
    """One client connection: CONNECT (then TLS and requests inside it) or proxied plain HTTP requests."""

    protocol_version = "HTTP/1.1"
    server: _ProxyServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet (tests would drown in access logs)."""

    def do_CONNECT(self) -> None:
        """Terminates TLS for the target host and serves the tunnelled requests."""
        host = self.path.rpartition(":")[0].lower()
        self.send_response(200, "Connection established")
        self.end_headers()
        self.close_connection = True
        try:
            tls = self.server.certs.context(host).wrap_socket(self.connection, server_side=True)
        except (ssl.SSLError, OSError):
            return
        _Handler(tls, self.client_address, self.server)

    def forward(self) -> None:
        """Routes the request by its Host and streams the backend's answer back."""
        url = urlsplit(self.path)
        host = (url.hostname if url.scheme else urlsplit(f"//{self.headers.get('Host', '')}").hostname) or ""
        path = (url.path or "/") + (f"?{url.query}" if url.query else "") if url.scheme else self.path
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        routes = self.server.routes
        for fresh in (False, True):
            backends = routes.backends(host, fresh)
            if isinstance(backends, int):
                if fresh:
                    self.fail(backends, "no Ingress for this host" if backends == 404 else "no ready endpoint")
                    return
                continue
            try:
                self.relay(backends[0], path, body, host)
                self.server.served[host] += 1
                return
            except OSError:
                if fresh:
                    self.fail(502, "the endpoint does not answer")
                    return

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = forward

    def relay(self, backend: tuple[str, int], path: str, body: bytes, host: str) -> None:
        """Sends the request to ``backend`` and streams the answer (OSError before the answer starts)."""
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers |= {"X-Forwarded-For": self.client_address[0], "X-Forwarded-Host": host}
        headers["X-Forwarded-Proto"] = "https" if isinstance(self.connection, ssl.SSLSocket) else "http"
        conn = http.client.HTTPConnection(*backend, timeout=BACKEND_TIMEOUT)
        try:
            conn.request(self.command, path, body=body or None, headers=headers)
            response = conn.getresponse()
            self.send_response(response.status, response.reason)
            length = response.getheader("Content-Length")
            for key, value in response.getheaders():
                if key.lower() not in HOP_BY_HOP:
                    self.send_header(key, value)
            bodyless = self.command == "HEAD" or response.status in (204, 304) or response.status < 200
            chunked = not bodyless and length is None
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            while not bodyless and (chunk := response.read1(65536)):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
                self.wfile.flush()
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        finally:
            conn.close()

    def fail(self, status: int, detail: str) -> None:
        """A small problem+json answer of the proxy itself."""
        body = b'{"title": "%s", "status": %d}' % (detail.encode(), status)
        self.send_response(status)
        self.send_header("Content-Type", "application/problem+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _ProxyServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

    def __init__(self, routes: Routes, certs: Certificates) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes, self.certs = routes, certs
        self.served: Counter[str] = Counter()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-answer is not an error of the proxy."""


class StandInIngress:
    """The proxy on a free 127.0.0.1 port, on a thread; a context manager. ``url``, ``ca_file``, :meth:`env`,
    ``served`` (requests relayed, per host)."""

    def __init__(self, kubeconfig: str | Path, directory: Path) -> None:
        self.kube = KubeClient.from_kubeconfig(kubeconfig)
        self.certs = Certificates(directory)
        self.ca_file = self.certs.ca_file
        self.server = _ProxyServer(Routes(self.kube), self.certs)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.served = self.server.served
        self._thread = threading.Thread(target=self.server.serve_forever, name="stand-in-ingress", daemon=True)

    def __enter__(self) -> StandInIngress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)
        self.kube.close()

    def env(self) -> dict[str, str]:
        """The environment that sends a process's HTTP(S) through this proxy and makes it trust the test CA."""
        return {
            "HTTPS_PROXY": self.url,
            "HTTP_PROXY": self.url,
            "NO_PROXY": "127.0.0.1,localhost",
            "SSL_CERT_FILE": str(self.ca_file),
        }
