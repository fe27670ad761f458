"""``WS_WORKERS``: one server process forks several workers that serve the same socket; events and session
changes cross them through Redis, as between replicas."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from tests.workspace_server.conftest import CONTROL_TOKEN
from tests.workspace_server.wsclient import WsClient, create_user, login, ok

pytestmark = pytest.mark.slow

REDIS_URL = os.environ.get("CANOPY_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
PASSWORD = "workers password 1"


def _posted(message: str) -> Any:
    return lambda e: e["event"] == "posted" and json.loads(e["data"]["post"])["message"] == message


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def test_workers_share_the_socket_events_and_sessions(create_database: Any, spawn_server: Any, tmp_path: Path) -> None:
    server = spawn_server(create_database("ws_workers"), tmp_path, WS_WORKERS="2", WS_REDIS_URL=REDIS_URL)
    server.wait_ready()
    workers = _children(server.proc.pid)
    assert len(workers) == 2, server.log()
    ok(
        httpx.put(
            f"{server.base_url}/api/v4/canopy/initial_admin",
            headers={"Authorization": f"Bearer {CONTROL_TOKEN}"},
            json={"email": "admin@acme.test", "username": "admin", "password_hash": PasswordHasher().hash(PASSWORD)},
        )
    )
    admin = login(server.base_url, "admin", PASSWORD)
    team_id = ok(admin.api.get(f"/teams/name/{server.team_name}"))["id"]
    reader = create_user(admin, server.base_url, "reader", team_id)
    town_square = ok(admin.api.get(f"/teams/{team_id}/channels/name/town-square"))["id"]
    # Connections land on either worker; every one of them gets every post, whichever worker wrote it.
    sockets = [WsClient(server.base_url, reader.token) for _ in range(6)]
    try:
        for i in range(4):
            with httpx.Client(base_url=f"{server.base_url}/api/v4", timeout=15) as fresh:
                fresh.headers["Authorization"] = f"Bearer {admin.token}"
                ok(fresh.post("/posts", json={"channel_id": town_square, "message": f"worker post {i}"}), 201)
        for ws in sockets:
            for i in range(4):
                ws.wait_event(_posted(f"worker post {i}"))
    finally:
        for ws in sockets:
            ws.close()
    # A session used (and so cached) by both workers is refused by both as soon as it is revoked.
    clients = [httpx.Client(base_url=f"{server.base_url}/api/v4", timeout=15) for _ in range(6)]
    try:
        for client in clients:
            client.headers["Authorization"] = f"Bearer {reader.token}"
            ok(client.get("/users/me"))
        ok(reader.api.post("/users/logout"))
        deadline = time.monotonic() + 2
        while True:
            statuses = [client.get("/users/me").status_code for client in clients]
            if statuses == [401] * len(clients) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert statuses == [401] * len(clients)
    finally:
        for client in clients:
            client.close()
    assert server.stop() == 0
    assert not (server.runtime_dir / "server.port").exists()
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_a_dead_worker_stops_the_server(create_database: Any, spawn_server: Any, tmp_path: Path) -> None:
    server = spawn_server(create_database("ws_workers_dead"), tmp_path, WS_WORKERS="2", WS_REDIS_URL=REDIS_URL)
    server.wait_ready()
    workers = _children(server.proc.pid)
    os.kill(workers[0], signal.SIGKILL)
    assert server.proc.wait(timeout=30) == 1
    assert "worker" in server.log() and "stopping" in server.log()


def test_workers_need_redis(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "WS_DATABASE_URL": "postgresql://ws@127.0.0.1/ws",
        "WS_CONTROL_TOKEN": "token",
        "WS_WORKERS": "2",
    }
    result = subprocess.run(
        [sys.executable, "-m", "workspace_server"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "WS_REDIS_URL must be set when WS_WORKERS > 1" in result.stderr
