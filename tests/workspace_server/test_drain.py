"""Graceful drain on SIGTERM: requests in flight finish, new connections are refused, WebSockets close with 1001."""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from websockets.exceptions import ConnectionClosed

from tests.waiting import wait_until
from tests.workspace_server.conftest import CONTROL_TOKEN
from tests.workspace_server.raw_http import read_response
from tests.workspace_server.scrape import in_flight
from tests.workspace_server.wsclient import WsClient, login

pytestmark = pytest.mark.slow

REDIS_URL = os.environ.get("CANOPY_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
PASSWORD = "drain password 1"


def _refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            return False
    except ConnectionRefusedError:
        return True


def _close_code(ws: WsClient) -> int | None:
    """Read until the server closes; the code of its close frame."""
    try:
        while True:
            ws.ws.recv(timeout=10)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_drains(create_database: Any, spawn_server: Any, tmp_path: Path, workers: int) -> None:
    extra = {"WS_WORKERS": str(workers), "WS_REDIS_URL": REDIS_URL} if workers > 1 else {}
    server = spawn_server(create_database(f"ws_drain_{workers}"), tmp_path, **extra)
    server.wait_ready()
    admin = {"email": "admin@acme.test", "username": "admin", "password_hash": PasswordHasher().hash(PASSWORD)}
    control = {"Authorization": f"Bearer {CONTROL_TOKEN}"}
    response = httpx.put(f"{server.base_url}/api/v4/canopy/initial_admin", headers=control, json=admin, timeout=10)
    assert response.status_code == 200, response.text
    ws = WsClient(server.base_url, login(server.base_url, "admin", PASSWORD).token)
    # A request in flight: its head and half its body sent, the rest after SIGTERM.
    body = json.dumps(admin).encode()
    head = (
        f"PUT /api/v4/canopy/initial_admin HTTP/1.1\r\nHost: canopy\r\nAuthorization: Bearer {CONTROL_TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as slow:
        slow.sendall(head + body[:10])
        wait_until("the slow request in flight", lambda: in_flight(server.base_url) == 1)
        server.proc.send_signal(signal.SIGTERM)
        wait_until("new connections refused", lambda: _refused(server.port), timeout=10)
        assert _close_code(ws) == 1001
        assert server.proc.poll() is None  # still serving the request in flight
        slow.sendall(body[10:])
        status, headers, answer = read_response(slow, bytearray())
    assert status == "HTTP/1.1 200 OK" and headers["connection"] == "close"
    assert json.loads(answer)["email"] == "admin@acme.test"
    assert server.proc.wait(timeout=30) == 0, server.log()
