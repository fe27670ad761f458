"""Web page tests: the control plane runs as a real ``canopy run`` subprocess on a database of its own."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from playwright.sync_api import Browser, sync_playwright

from control_plane.core.migrate import upgrade
from tests.web.browser import CHROMIUM, CHROMIUM_ARGS

STARTUP_TIMEOUT = 60.0


@dataclass
class Server:
    """A running control plane."""

    port: int
    db_url: str
    state_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        """The public URL (what mails and the browser use)."""
        return f"http://localhost:{self.port}"

    @property
    def loopback(self) -> str:
        """The same server by IP (for httpx, whose cookie jar dislikes bare ``localhost``)."""
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        """Everything the server printed so far."""
        return self.log_path.read_text(errors="replace")

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows of ``sql`` on the control-plane database."""
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _pids_mentioning(needle: bytes) -> list[int]:
    """Processes whose command line or environment mention ``needle`` (never this one)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        for part in ("cmdline", "environ"):
            try:
                if needle in (entry / part).read_bytes():
                    found.append(int(entry.name))
                    break
            except OSError:
                continue
    return found


def _kill_pids(pids: list[int]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = []
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
                alive.append(pid)
        deadline = time.monotonic() + 5
        while alive and time.monotonic() < deadline:
            alive = [pid for pid in alive if Path(f"/proc/{pid}").exists() and not _zombie(pid)]
            time.sleep(0.1)
        pids = alive
        if not pids:
            return


def _zombie(pid: int) -> bool:
    try:
        return ") Z " in Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True


def _drop_workspace_databases(server: Server, admin_url: str) -> None:
    """Drop the databases and ``ws_%`` roles the reconciler made for this server's workspaces."""
    try:
        rows = server.query("SELECT id, outputs FROM workspaces")
    except psycopg.Error:
        return
    # Outputs name what was recorded; the local provider's ws_<12 hex of the id> catches a role
    # created by a step that was stopped before it could record its outputs.
    derived = {f"ws_{workspace_id.hex[:12]}" for workspace_id, _ in rows}
    roles = derived | {str(o["database_role"]) for _, o in rows if o and o.get("database_role")}
    names = derived | {str(o["database_name"]) for _, o in rows if o and o.get("database_name")}
    with psycopg.connect(admin_url, autocommit=True) as conn:
        owned = conn.execute(
            "SELECT d.datname FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba "
            "WHERE r.rolname = ANY(%s) OR d.datname = ANY(%s)",
            (sorted(roles), sorted(names)),
        ).fetchall()
        for (name,) in owned:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]
        for role in sorted(roles):
            if role.startswith("ws_"):
                conn.execute(f'DROP ROLE IF EXISTS "{role}"')  # type: ignore[arg-type]


def stop_server(server: Server, admin_url: str) -> None:
    """Stop the control plane, its worker and any workspace server it started; drop what they made."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGTERM)
    try:
        server.process.wait(15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(5)
    _kill_pids(_pids_mentioning(str(server.state_dir).encode()))
    _drop_workspace_databases(server, admin_url)


def start_server(db_url: str, state_dir: Path, **env: str) -> Server:
    """Start ``canopy run`` on ``db_url`` (migrated here) and wait until it is ready."""
    upgrade(db_url)
    port = free_port()
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir.parent / f"{state_dir.name}.log"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CANOPY_")}
    environment.update(
        {
            "CANOPY_DATABASE_URL": db_url,
            "CANOPY_DEV_MODE": "true",
            "CANOPY_STATE_DIR": str(state_dir),
            "CANOPY_PUBLIC_URL": f"http://localhost:{port}",
            "CANOPY_BASE_DOMAIN": "localhost",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
    )
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "control_plane.cli", "run", "--port", str(port)],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(port, db_url, state_dir, log_path, process)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"control plane exited with {process.returncode}:\n{server.log()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.loopback}/readyz", timeout=2).status_code == 200:
                return server
        if time.monotonic() > deadline:
            raise RuntimeError(f"control plane not ready after {STARTUP_TIMEOUT}s:\n{server.log()[-3000:]}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def server_factory(
    create_database: Callable[[str], str], admin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Server]]:
    """Factory of control planes (stopped, with everything they started, after each module)."""
    servers: list[Server] = []

    def make(label: str, **env: str) -> Server:
        state_dir = tmp_path_factory.mktemp(f"web-{label}") / "state"
        server = start_server(create_database(f"web_{label}"), state_dir, **env)
        servers.append(server)
        return server

    yield make
    for server in servers:
        stop_server(server, admin_url)


@pytest.fixture(scope="module")
def server(server_factory: Callable[..., Server]) -> Server:
    """The control plane most web tests share (dev mode, generous rate limit)."""
    return server_factory("main", CANOPY_SIGNUP_RATE_LIMIT="1000")


@pytest.fixture(scope="module")
def limited_server(server_factory: Callable[..., Server]) -> Server:
    """A control plane allowing only three signups per client address."""
    return server_factory("limited", CANOPY_SIGNUP_RATE_LIMIT="3")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium driven by Playwright (Playwright never downloads a browser here)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
