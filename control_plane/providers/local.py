"""Embedded-default providers: everything on this machine.

- Database: a role and a database per workspace on the control plane's own PostgreSQL server, with the
  workspace's stored (random) password.
- Storage: a files directory under ``<state_dir>/workspaces/<id>/files``.
- Compute: a supervised ``python -m workspace_server`` process per workspace. The server holds an
  exclusive ``flock`` on ``<runtime_dir>/server.lock`` for its whole life, so "is it running?" is
  answered by the lock, and a second server for one workspace cannot exist.
- DNS: ``<control-plane URL>/w/<slug>``, which every client reaches, and ``http://<slug>.<base_domain>:<port>``
  for browsers (which resolve ``*.localhost`` themselves); the control plane proxies both to the port recorded in
  the workspace outputs.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from control_plane.credentials.models import Purpose
from control_plane.credentials.service import WorkspaceSecrets
from control_plane.providers.base import Ensured, ProviderError, ServerConfig, WorkspaceSpec
from control_plane.providers.tenant_database import TenantDatabase
from control_plane.providers.workspace_client import ping

CONNECTION_LIMIT = 20
SERVER_MODULE = "workspace_server"
LOCK_FILE = "server.lock"
PID_FILE = "server.pid"
PORT_FILE = "server.port"
LOG_FILE = "server.log"
SPAWN_LOCK_FILE = "spawn.lock"
LOST_LOCK_EXIT_STATUS = 3  # the server's status when another instance holds server.lock
PASSTHROUGH_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV")


def workspace_root(state_dir: Path, ws: WorkspaceSpec) -> Path:
    """``<state_dir>/workspaces/<id>``: everything on disk that belongs to the workspace."""
    return state_dir.resolve() / "workspaces" / str(ws.id)


def database_name(ws: WorkspaceSpec) -> str:
    """Name of the workspace's database and of its login role."""
    return f"ws_{ws.short_id}"


# --------------------------------------------------------------------------------------------
# Database


def _libpq_url(params: dict[str, Any]) -> str:
    """A ``postgresql://`` URL from libpq parameters (TCP host or Unix-socket directory)."""
    user = quote(str(params.get("user", "")), safe="")
    password = params.get("password")
    auth = f"{user}:{quote(str(password), safe='')}@" if password else (f"{user}@" if user else "")
    host = str(params.get("host", ""))
    port = params.get("port")
    dbname = quote(str(params.get("dbname", "")), safe="")
    if host.startswith("/") or not host:
        query = [f"host={quote(host, safe='/')}"] if host else []
        query += [f"port={port}"] if port else []
        return f"postgresql://{auth}/{dbname}" + ("?" + "&".join(query) if query else "")
    netloc = f"{host}:{port}" if port else host
    return f"postgresql://{auth}{netloc}/{dbname}"


SERVER_DATABASES = ("postgres", "template1")
"""Databases every PostgreSQL server has, which ``PUBLIC`` may open by default."""


class LocalDatabase:
    """A role ``ws_<12 hex>`` and a database of the same name, on the control plane's server (one dedicated to
    Canopy): the role may open its own database and no other (``PUBLIC`` loses ``CONNECT`` on the control
    database, on every workspace's and on the server's own ``postgres`` and ``template1``). The role's password
    is the workspace's stored database credential (see :mod:`control_plane.providers.tenant_database`)."""

    def __init__(self, control_url: str, secrets: WorkspaceSecrets) -> None:
        self._control_url = control_url
        self._control_db = str(conninfo_to_dict(control_url).get("dbname", ""))
        self._secrets = secrets

    def connection_url(self, ws: WorkspaceSpec) -> str:
        params: dict[str, Any] = dict(conninfo_to_dict(self._control_url))
        name = database_name(ws)
        params.update(user=name, password=self._secrets(ws.id, Purpose.database), dbname=name)
        return _libpq_url(params)

    @contextlib.contextmanager
    def _admin(self, dbname: str | None = None) -> Iterator[psycopg.Connection[Any]]:
        """Autocommit superuser session on the control database (or on ``dbname``)."""
        conninfo = make_conninfo(self._control_url, dbname=dbname) if dbname else self._control_url
        with psycopg.connect(conninfo, autocommit=True) as conn:
            yield conn

    def _tenant(self, ws: WorkspaceSpec) -> TenantDatabase:
        return TenantDatabase(self._admin, ws.id, database_name(ws))

    def ensure(self, ws: WorkspaceSpec) -> Ensured:
        password = self._secrets(ws.id, Purpose.database)
        return self._tenant(ws).ensure(password, CONNECTION_LIMIT, (self._control_db, *SERVER_DATABASES))

    def teardown(self, ws: WorkspaceSpec) -> None:
        self._tenant(ws).teardown()

    def leftovers(self, ws: WorkspaceSpec) -> list[str]:
        return self._tenant(ws).leftovers()


# --------------------------------------------------------------------------------------------
# Storage


class LocalStorage:
    """A files directory per workspace."""

    def __init__(self, state_dir: Path) -> None:
        self._state_dir = state_dir

    def files_dir(self, ws: WorkspaceSpec) -> Path:
        return workspace_root(self._state_dir, ws) / "files"

    def ensure(self, ws: WorkspaceSpec) -> Ensured:
        path = self.files_dir(ws)
        created = () if path.is_dir() else ("storage",)
        path.mkdir(parents=True, exist_ok=True)
        return Ensured({"files_dir": str(path)}, created)

    def teardown(self, ws: WorkspaceSpec) -> None:
        root = workspace_root(self._state_dir, ws)
        if root.exists():
            shutil.rmtree(root)

    def leftovers(self, ws: WorkspaceSpec) -> list[str]:
        root = workspace_root(self._state_dir, ws)
        return [f"directory {root}"] if root.exists() else []


# --------------------------------------------------------------------------------------------
# Compute


def lock_held(lock_path: Path) -> bool:
    """Whether some process holds the exclusive flock on ``lock_path`` (probe, released at once)."""
    try:
        fd = os.open(lock_path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return True
        raise
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


@contextlib.contextmanager
def _exclusive(lock_path: Path, timeout: float) -> Iterator[None]:
    """Hold an flock on ``lock_path`` (one spawner/stopper per workspace across all workers)."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError as exc:
                if time.monotonic() > deadline:
                    raise ProviderError(f"timed out waiting for {lock_path.name}") from exc
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def process_gone(pid: int) -> bool:
    """Whether ``pid`` has exited (reaping it if it is our child; a zombie counts as gone)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def process_runtime_dir(pid: int) -> str | None:
    """``WS_RUNTIME_DIR`` of process ``pid`` (None if it has none or cannot be read)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    for item in environ.split(b"\0"):
        if item.startswith(b"WS_RUNTIME_DIR="):
            return item.split(b"=", 1)[1].decode(errors="replace")
    return None


class LocalCompute:
    """A detached workspace-server process per workspace, found again through its lock file."""

    def __init__(
        self,
        state_dir: Path,
        ready_timeout: float,
        command: Sequence[str] = (sys.executable, "-m", SERVER_MODULE),
        stop_timeout: float = 10.0,
    ) -> None:
        self._state_dir = state_dir
        self._ready_timeout = ready_timeout
        self._command = tuple(command)
        self._stop_timeout = stop_timeout

    def runtime_dir(self, ws: WorkspaceSpec) -> Path:
        return workspace_root(self._state_dir, ws) / "runtime"

    def ensure(self, ws: WorkspaceSpec, config: ServerConfig) -> Ensured:
        rd = self.runtime_dir(ws)
        rd.mkdir(parents=True, exist_ok=True)
        with _exclusive(rd / SPAWN_LOCK_FILE, 2 * self._ready_timeout):
            proc = None if lock_held(rd / LOCK_FILE) else self._spawn(rd, config)
            port, started = self._wait_ready(rd, proc)
        outputs = {
            "runtime_dir": str(rd),
            "port": port,
            "pid": _read_int(rd / PID_FILE),
            "internal_url": f"http://127.0.0.1:{port}",
        }
        return Ensured(outputs, ("server",) if started else ())

    def _environment(self, rd: Path, config: ServerConfig) -> dict[str, str]:
        env = {key: os.environ[key] for key in PASSTHROUGH_ENV if key in os.environ}
        env.update(
            WS_DATABASE_URL=config.database_url,
            WS_PUBLIC_URL=config.public_url,
            WS_SITE_NAME=config.site_name,
            WS_TEAM_NAME=config.team_name,
            WS_TEAM_DISPLAY_NAME=config.team_display_name,
            WS_CONTROL_TOKEN=config.control_token,
            WS_FILES_DIR=config.files_dir,
            WS_LISTEN_HOST="127.0.0.1",
            WS_LISTEN_PORT="0",
            WS_RUNTIME_DIR=str(rd),
        )
        return env

    def _spawn(self, rd: Path, config: ServerConfig) -> subprocess.Popen[bytes]:
        for stale in (PID_FILE, PORT_FILE):
            (rd / stale).unlink(missing_ok=True)
        with open(rd / LOG_FILE, "ab") as log:
            return subprocess.Popen(
                self._command,
                env=self._environment(rd, config),
                cwd=rd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )

    def _wait_ready(self, rd: Path, proc: subprocess.Popen[bytes] | None) -> tuple[int, bool]:
        """Wait for ``server.port`` and a 200 ping; ``proc`` is None when adopting a running server.

        Returns the port and whether the server answering is the one ``proc`` started.
        """
        deadline = time.monotonic() + self._ready_timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                if proc.returncode != LOST_LOCK_EXIT_STATUS:
                    raise ProviderError(f"workspace server exited with status {proc.returncode} (see {rd / LOG_FILE})")
                proc = None  # another instance holds the lock: adopt it
            elif proc is None and not lock_held(rd / LOCK_FILE):
                raise ProviderError(f"workspace server stopped while starting (see {rd / LOG_FILE})")
            port = _read_int(rd / PORT_FILE)
            if port and ping(f"http://127.0.0.1:{port}", timeout=1.0):
                return port, proc is not None
            time.sleep(0.1)
        # Wedged (never published its port, or stopped answering): stop it so the retry starts afresh.
        if lock_held(rd / LOCK_FILE):
            with contextlib.suppress(ProviderError):
                self._terminate(rd)
        raise ProviderError(f"workspace server not ready after {self._ready_timeout:g}s, stopped (see {rd / LOG_FILE})")

    def stop(self, ws: WorkspaceSpec) -> None:
        rd = self.runtime_dir(ws)
        if not rd.is_dir():
            return
        with _exclusive(rd / SPAWN_LOCK_FILE, 2 * self._ready_timeout):
            if lock_held(rd / LOCK_FILE):
                self._terminate(rd)
            for stale in (PID_FILE, PORT_FILE):
                (rd / stale).unlink(missing_ok=True)

    def _terminate(self, rd: Path) -> None:
        pid = _read_int(rd / PID_FILE)
        if pid is None:
            raise ProviderError("workspace server holds its lock but wrote no pid file")
        owner = process_runtime_dir(pid)
        if owner is not None and owner != str(rd):
            raise ProviderError(f"pid {pid} in {PID_FILE} is not this workspace's server")
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
                os.kill(pid, signal.SIGCONT)  # a stopped process handles SIGTERM only once continued
            deadline = time.monotonic() + self._stop_timeout
            while time.monotonic() < deadline:
                if process_gone(pid) and not lock_held(rd / LOCK_FILE):
                    return
                time.sleep(0.05)
        raise ProviderError(f"workspace server pid {pid} did not stop")

    def teardown(self, ws: WorkspaceSpec) -> None:
        self.stop(ws)
        shutil.rmtree(self.runtime_dir(ws), ignore_errors=True)

    def stop_all(self) -> int:
        """Stop every workspace server under the state dir (``canopy run`` on exit); returns how many.

        Data stays; the next start's resync restarts the servers of running workspaces.
        """
        stopped = 0
        for rd in sorted((self._state_dir.resolve() / "workspaces").glob("*/runtime")):
            if lock_held(rd / LOCK_FILE):
                with contextlib.suppress(ProviderError):
                    self._terminate(rd)
                    stopped += 1
        return stopped

    def leftovers(self, ws: WorkspaceSpec) -> list[str]:
        rd = self.runtime_dir(ws)
        return [f"workspace server in {rd}"] if lock_held(rd / LOCK_FILE) else []


# --------------------------------------------------------------------------------------------
# DNS


class LocalDns:
    """``<control-plane URL>/w/<slug>`` (the workspace's address) and ``<slug>.<base_domain>`` on the control plane's
    port (for browsers); the control plane proxies both."""

    def __init__(self, base_domain: str, public_url: str) -> None:
        self._base_domain = base_domain
        self._public_url = public_url.rstrip("/")
        self._port = urlsplit(public_url).port
        self._scheme = urlsplit(public_url).scheme or "http"

    def endpoint_url(self, ws: WorkspaceSpec) -> str:
        return f"{self._public_url}/w/{ws.slug}"

    def subdomain_url(self, ws: WorkspaceSpec) -> str:
        """The browser-only address ``<scheme>://<slug>.<base_domain>[:port]``."""
        port = f":{self._port}" if self._port else ""
        return f"{self._scheme}://{ws.slug}.{self._base_domain}{port}"

    def ensure(self, ws: WorkspaceSpec, outputs: dict[str, Any]) -> Ensured:
        if not outputs.get("port"):
            raise ProviderError("no workspace-server port to route to")
        return Ensured({"endpoint_url": self.endpoint_url(ws), "subdomain_url": self.subdomain_url(ws)})

    def teardown(self, ws: WorkspaceSpec) -> None:
        """Nothing to remove: the route disappears with the port in the outputs."""

    def leftovers(self, ws: WorkspaceSpec) -> list[str]:
        return []
