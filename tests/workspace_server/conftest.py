"""Fixtures that run the real workspace server as a subprocess against a fresh database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from tests.workspace_server.wsclient import WsClient

CONTROL_TOKEN = "test-control-token-0123456789abcdef"
TEAM_NAME = "acme"
ADMIN_EMAIL = "admin@acme.test"
ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "correct horse battery"


@dataclass
class ServerProcess:
    """A workspace server subprocess and where to reach it."""

    proc: subprocess.Popen[bytes]
    runtime_dir: Path
    log_path: Path
    database_url: str
    files_dir: Path
    port: int = 0
    env: dict[str, str] = field(default_factory=dict)
    team_name: str = TEAM_NAME
    control_token: str = CONTROL_TOKEN

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait for the port file, failing early if the process dies."""
        port_file = self.runtime_dir / "server.port"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if port_file.exists():
                self.port = int(port_file.read_text())
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.02)
        raise AssertionError(f"server not ready after {timeout}s:\n{self.log()}")

    def stop(self) -> int:
        """SIGTERM, then wait; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def server_env(database_url: str, runtime_dir: Path, files_dir: Path, **extra: str) -> dict[str, str]:
    """The process environment for a server: ours, minus any WS_* settings of the caller's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WS_")}
    env |= {
        "WS_DATABASE_URL": database_url,
        "WS_CONTROL_TOKEN": CONTROL_TOKEN,
        "WS_PUBLIC_URL": "http://acme.localhost:8000",
        "WS_SITE_NAME": "Acme",
        "WS_TEAM_NAME": TEAM_NAME,
        "WS_TEAM_DISPLAY_NAME": "Acme Inc",
        "WS_FILES_DIR": str(files_dir),
        "WS_RUNTIME_DIR": str(runtime_dir),
    }
    return env | extra


@pytest.fixture(scope="module")
def spawn_server() -> Iterator[Callable[..., ServerProcess]]:
    """Factory: starts ``python -m workspace_server`` (not waiting for it); stops them after the module.

    Module scope keeps the number of live servers (and their database connections) small.
    """
    started: list[ServerProcess] = []

    def spawn(database_url: str, base_dir: Path, **extra_env: str) -> ServerProcess:
        runtime_dir, files_dir = base_dir / "run", base_dir / "files"
        base_dir.mkdir(parents=True, exist_ok=True)
        log_path = base_dir / f"server-{len(started)}.log"
        env = server_env(database_url, runtime_dir, files_dir, **extra_env)
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "workspace_server"], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        server = ServerProcess(proc, runtime_dir, log_path, database_url, files_dir, env=env)
        started.append(server)
        return server

    yield spawn
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def server(
    create_database: Callable[[str], str],
    spawn_server: Callable[..., ServerProcess],
    tmp_path_factory: pytest.TempPathFactory,
) -> ServerProcess:
    """One running server on a fresh database, shared by a test module."""
    running = spawn_server(create_database("ws"), tmp_path_factory.mktemp("ws"))
    running.wait_ready()
    return running


@dataclass(frozen=True)
class Account:
    """A user and its credentials."""

    user: dict[str, Any]
    username: str
    email: str
    password: str


@pytest.fixture(scope="module")
def admin(server: ServerProcess) -> Account:
    """The initial admin, created through the control-plane endpoint with an argon2 hash made here."""
    response = httpx.put(
        f"{server.base_url}/api/v4/canopy/initial_admin",
        headers={"Authorization": f"Bearer {CONTROL_TOKEN}"},
        json={
            "email": ADMIN_EMAIL,
            "username": ADMIN_USERNAME,
            "password_hash": PasswordHasher().hash(ADMIN_PASSWORD),
        },
    )
    assert response.status_code == 200, response.text
    return Account(response.json(), ADMIN_USERNAME, ADMIN_EMAIL, ADMIN_PASSWORD)


@pytest.fixture
def connect(server: ServerProcess) -> Iterator[Callable[[Any], WsClient]]:
    """Opens WebSocket clients as a user (anything with ``token``); all are closed after the test."""
    opened: list[WsClient] = []

    def open_socket(who: Any) -> WsClient:
        ws = WsClient(server.base_url, who.token)
        opened.append(ws)
        return ws

    yield open_socket
    for ws in opened:
        ws.close()
