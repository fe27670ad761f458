"""Embedded-default providers: everything on this machine.

- Database: a role and a database per workspace on the control plane's own PostgreSQL server, with the
  workspace's stored (random) password.
- Storage: a files directory under ``<state_dir>/workspaces/<id>/files``.
- Compute: a supervised workspace-server process per workspace, forked by a fork server
  (``python -m workspace_server.forkserver``, one per process that reconciles, started with it): a server starts
  without paying the interpreter's start and the server's imports, which is most of what a wake costs. The server
  holds an exclusive ``flock`` on ``<runtime_dir>/server.lock`` for its whole life, so "is it running?" is
  answered by the lock, "which process is it?" by the process holding that file open, and a second server in one
  runtime directory cannot exist. A workspace has two (:mod:`control_plane.providers.local_slots`): a release
  switch starts the new release beside the old one, points at it once it answers with that release, and stops the
  old one after the outputs name the new one (blue/green). A release with a command runs it as a detached process
  with the same environment.
- DNS: ``<control-plane URL>/w/<slug>``, which every client reaches, and ``http://<slug>.<base_domain>:<port>``
  for browsers (which resolve ``*.localhost`` themselves); the control plane proxies both to the port recorded in
  the workspace outputs.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from control_plane.credentials.models import Purpose
from control_plane.credentials.service import WorkspaceSecrets
from control_plane.providers.base import (
    Cursors,
    Drift,
    Ensured,
    Observed,
    ProviderError,
    RunRelease,
    ServerConfig,
    Watched,
    WorkspaceSpec,
)
from control_plane.providers.local_slots import Slots, mark_release, runs
from control_plane.providers.tenant_database import TenantDatabase
from control_plane.providers.workspace_client import observed_from_ping, ping, server_status

CONNECTION_LIMIT = 20
# A server opens at most its pool, the pool's overflow (10) and the post writer's two connections: its pool is kept
# small enough that a burst (the requests held while it woke, released at once) stays within the role's limit.
SERVER_POOL_SIZE = CONNECTION_LIMIT - 12
FORK_SERVER_MODULE = "workspace_server.forkserver"
LOCK_FILE = "server.lock"
PID_FILE = "server.pid"
PORT_FILE = "server.port"
LOG_FILE = "server.log"
SPAWN_LOCK_FILE = "spawn.lock"
READY_POLL_SECONDS = 0.02
HEALTH_TIMEOUT_SECONDS = 2.0  # a running server's ping, checked at each drift detection
SWITCH_GRACE_SECONDS = 2.0
"""After a switch, how long the previous server keeps serving once the outputs name the new one: longer than the
proxy keeps a port (``control_plane.proxy.CACHE_SECONDS``), so no request is sent to it after its SIGTERM."""
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


def holds_open(pid: int, path: Path) -> bool:
    """Whether process ``pid`` has ``path`` open (a server holds its ``server.lock`` open for its whole life)."""
    try:
        descriptors = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in descriptors:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}") == str(path):
                return True
    return False


class ForkServer:
    """A ``python -m workspace_server.forkserver`` child of this process, which starts workspace servers by forking
    itself (see that module): started on first use, and again if it died. Calls are serialised."""

    def __init__(self, root: Path, timeout: float) -> None:
        self._root = root
        self._timeout = timeout
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> subprocess.Popen[str]:
        """The running fork server (started now if it is not running)."""
        if self._process is None or self._process.poll() is not None:
            self._root.mkdir(parents=True, exist_ok=True)
            self._process = subprocess.Popen(
                [sys.executable, "-m", FORK_SERVER_MODULE, str(self._root)],
                env={key: os.environ[key] for key in PASSTHROUGH_ENV if key in os.environ},
                cwd=self._root,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                close_fds=True,
            )
        return self._process

    def fork(self, env: dict[str, str], cwd: Path, log: Path) -> int:
        """Start a server with environment ``env`` in ``cwd``, its output appended to ``log``; returns its pid."""
        request = json.dumps({"env": env, "cwd": str(cwd), "log": str(log)}) + "\n"
        with self._lock:
            for attempt in (1, 2):  # a fork server found dead is started again, once
                process = self.start()
                try:
                    answer = self._ask(process, request)
                    break
                except (OSError, ValueError) as exc:
                    process.kill()
                    process.wait()
                    if attempt == 2:
                        raise ProviderError(f"fork server failed: {type(exc).__name__}: {exc}") from exc
        if "pid" not in answer:
            raise ProviderError(f"fork server refused: {answer.get('error')}")
        return int(answer["pid"])

    def _ask(self, process: subprocess.Popen[str], request: str) -> dict[str, Any]:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(request)
        process.stdin.flush()
        readable, _, _ = select.select([process.stdout], [], [], self._timeout)
        line = process.stdout.readline() if readable else ""
        if not line:
            raise OSError("no answer")
        answer = json.loads(line)
        if not isinstance(answer, dict):
            raise ValueError("not a JSON object")
        return answer


_fork_servers: dict[Path, ForkServer] = {}
_fork_servers_lock = threading.Lock()


def fork_server(state_dir: Path, timeout: float) -> ForkServer:
    """This process's fork server of the workspaces under ``state_dir`` (one per state directory)."""
    root = state_dir.resolve() / "workspaces"
    with _fork_servers_lock:
        return _fork_servers.setdefault(root, ForkServer(root, timeout))


class LocalCompute:
    """A detached workspace-server process per workspace, found again through its lock file, in one of two slots
    (:mod:`control_plane.providers.local_slots`): a release switch starts the new server in the other slot beside
    the old one (blue/green), and :meth:`retire` stops the old one once the outputs name the new one."""

    def __init__(self, state_dir: Path, ready_timeout: float, stop_timeout: float = 10.0) -> None:
        self._state_dir = state_dir
        self._ready_timeout = ready_timeout
        self._stop_timeout = stop_timeout
        self._forks = fork_server(state_dir, ready_timeout)

    def slots(self, ws: WorkspaceSpec) -> Slots:
        """The workspace's two server slots."""
        return Slots(workspace_root(self._state_dir, ws))

    def runtime_dir(self, ws: WorkspaceSpec) -> Path:
        """The current slot's runtime directory."""
        return self.slots(ws).current()

    @contextlib.contextmanager
    def _spawning(self, slots: Slots) -> Iterator[None]:
        """The workspace's spawner lock (one starter/stopper per workspace across all workers)."""
        slots.home.mkdir(parents=True, exist_ok=True)
        with _exclusive(slots.home / SPAWN_LOCK_FILE, 2 * self._ready_timeout + 2 * self._stop_timeout):
            yield

    def ensure(self, ws: WorkspaceSpec, config: ServerConfig) -> Ensured:
        slots = self.slots(ws)
        with self._spawning(slots):
            rd, port, started = self._serve(slots, config)
        outputs = {
            "runtime_dir": str(rd),
            "port": port,
            "pid": _read_int(rd / PID_FILE),
            "internal_url": f"http://127.0.0.1:{port}",
        }
        return Ensured(outputs, ("server",) if started else ())

    def _serve(self, slots: Slots, config: ServerConfig) -> tuple[Path, int, bool]:
        """A server of ``config.release`` serving in the current slot (switched to, if need be); returns its slot,
        its port and whether it was started now. Every crash on the way leaves a state this finishes."""
        release, current, other = config.release, slots.current(), slots.other()
        if lock_held(current / LOCK_FILE) and runs(current, release):
            return current, *self._wait_ready(current, None)
        if lock_held(other / LOCK_FILE) and runs(other, release):
            # A switch that crashed before its flip, or a return to the previous release not yet retired.
            port, _ = self._wait_ready(other, None)
            slots.make_current(other)
            return other, port, False
        if not lock_held(current / LOCK_FILE):
            return current, *self._wait_ready(current, self._spawn(current, config), release)
        if lock_held(other / LOCK_FILE):
            self._terminate(other)  # neither current nor wanted: nothing routes to it
        port, started = self._wait_ready(other, self._spawn(other, config), release)
        slots.make_current(other)
        return other, port, started

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
            WS_DB_POOL_SIZE=str(SERVER_POOL_SIZE),
        )
        env.update(config.health.environment() if config.health else {})
        return env

    def _spawn(self, rd: Path, config: ServerConfig) -> int:
        """Start ``config.release`` in slot ``rd``: its command as a detached process, the bundled server through
        the fork server. Returns the pid."""
        rd.mkdir(parents=True, exist_ok=True)
        for stale in (PID_FILE, PORT_FILE):
            (rd / stale).unlink(missing_ok=True)
        mark_release(rd, config.release)
        env = self._environment(rd, config)
        if config.release is None or config.release.command is None:
            return self._forks.fork(env, rd, rd / LOG_FILE)
        return _detached(config.release.command, env, rd)

    def _wait_ready(self, rd: Path, pid: int | None, release: RunRelease | None = None) -> tuple[int, bool]:
        """Wait for ``server.port`` and a 200 ping (naming ``release``, when given); ``pid`` (the server just
        started) is None when adopting a running server.

        Returns the port and whether the server answering is the one started.
        """
        deadline = time.monotonic() + self._ready_timeout
        while time.monotonic() < deadline:
            if pid is not None and process_gone(pid):
                if not lock_held(rd / LOCK_FILE):
                    raise ProviderError(f"workspace server exited while starting (see {rd / LOG_FILE})")
                pid = None  # it found another instance holding the lock: adopt that one
            elif pid is None and not lock_held(rd / LOCK_FILE):
                raise ProviderError(f"workspace server stopped while starting (see {rd / LOG_FILE})")
            port = _read_int(rd / PORT_FILE)
            status = server_status(f"http://127.0.0.1:{port}", timeout=1.0) if port else None
            if port and status is not None:
                self._check_release(rd, status, release)
                return port, pid is not None
            time.sleep(READY_POLL_SECONDS)
        # Wedged (never published its port, or stopped answering): stop it so the retry starts afresh.
        if lock_held(rd / LOCK_FILE):
            with contextlib.suppress(ProviderError):
                self._terminate(rd)
        raise ProviderError(f"workspace server not ready after {self._ready_timeout:g}s, stopped (see {rd / LOG_FILE})")

    def _check_release(self, rd: Path, status: Mapping[str, Any], release: RunRelease | None) -> None:
        """Stop the server in ``rd`` and raise when its ping names another release than ``release``."""
        reported = status.get("CanopyRelease")
        if release is None or reported == release.version:
            return
        with contextlib.suppress(ProviderError):
            self._terminate(rd)
        raise ProviderError(f"the server started as release {release.version} answers as {reported}, stopped")

    def observe(self, ws: WorkspaceSpec, outputs: Mapping[str, Any]) -> Observed:
        """The release and schema revision the running server reports."""
        url = outputs.get("internal_url")
        return observed_from_ping(str(url)) if url else Observed()

    def retire(self, ws: WorkspaceSpec) -> None:
        """Stop the server of the slot that is not current (the previous release's, after a switch), gracefully,
        once every proxy has had time to read the recorded outputs that name the current one."""
        slots = self.slots(ws)
        if not lock_held(slots.other() / LOCK_FILE):
            return
        with self._spawning(slots):
            other = slots.other()
            if lock_held(other / LOCK_FILE):
                time.sleep(SWITCH_GRACE_SECONDS)
                self._terminate(other)

    def stop(self, ws: WorkspaceSpec) -> None:
        slots = self.slots(ws)
        if not slots.home.is_dir():
            return
        with self._spawning(slots):
            for rd in slots.all():
                if lock_held(rd / LOCK_FILE):
                    self._terminate(rd)
                for stale in (PID_FILE, PORT_FILE):
                    (rd / stale).unlink(missing_ok=True)

    def _terminate(self, rd: Path) -> None:
        pid = _read_int(rd / PID_FILE)
        if pid is None:
            raise ProviderError("workspace server holds its lock but wrote no pid file")
        if not holds_open(pid, rd / LOCK_FILE) and not process_gone(pid):
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
        slots = self.slots(ws)
        for rd in slots.all():
            shutil.rmtree(rd, ignore_errors=True)
        slots.remove_pointer()

    def stop_all(self) -> int:
        """Stop every workspace server under the state dir (``canopy run`` on exit); returns how many.

        Data stays; the next start's drift check (:meth:`find_drift`) restarts the servers of running workspaces.
        """
        stopped = 0
        for root in sorted((self._state_dir.resolve() / "workspaces").glob("*/")):
            for rd in Slots(root).all():
                if lock_held(rd / LOCK_FILE):
                    with contextlib.suppress(ProviderError):
                        self._terminate(rd)
                        stopped += 1
        return stopped

    def leftovers(self, ws: WorkspaceSpec) -> list[str]:
        return [f"workspace server in {rd}" for rd in self.slots(ws).all() if lock_held(rd / LOCK_FILE)]

    def find_drift(self, watched: Sequence[Watched], cursors: Cursors) -> list[Drift]:
        """The local runtime's supervisor: a running workspace whose server is gone, or no longer answers its ping
        (its health report), has drifted; the repair starts it again."""
        found = []
        for item in watched:
            reason = self._unhealthy(self.runtime_dir(item.spec))
            if reason:
                found.append(Drift(item.spec.id, "local-server", reason))
        return found

    @staticmethod
    def _unhealthy(rd: Path) -> str | None:
        if not lock_held(rd / LOCK_FILE):
            return "the workspace server is not running"
        port = _read_int(rd / PORT_FILE)
        if not port or not ping(f"http://127.0.0.1:{port}", timeout=HEALTH_TIMEOUT_SECONDS):
            return "the workspace server does not answer its ping"
        return None


def _detached(command: Sequence[str], env: dict[str, str], rd: Path) -> int:
    """Start ``command`` in its own session in ``rd``, its output appended to the slot's log; returns its pid."""
    with open(rd / LOG_FILE, "ab") as log:
        try:
            process = subprocess.Popen(
                list(command),
                env=env,
                cwd=rd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                close_fds=True,
                start_new_session=True,
            )
        except OSError as exc:
            raise ProviderError(f"the release's command did not start: {type(exc).__name__}: {exc.strerror}") from exc
    return process.pid


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
