"""The workspace's last use (``GET /api/v4/canopy/activity``), which the control plane's idle hibernation reads:
requests count, the control plane's own calls and pings do not, an open WebSocket counts for as long as it stays
open, and two server processes of one workspace agree through its database."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from tests.waiting import wait_until
from tests.workspace_server.conftest import CONTROL_TOKEN, ServerProcess
from tests.workspace_server.wsclient import WsClient

CONTROL = {"Authorization": f"Bearer {CONTROL_TOKEN}"}


def now_ms() -> int:
    return int(time.time() * 1000)


def last_use(server: ServerProcess) -> int:
    response = httpx.get(f"{server.base_url}/api/v4/canopy/activity", headers=CONTROL, timeout=10)
    assert response.status_code == 200, response.text
    assert list(response.json()) == ["last_request_at"]
    value = response.json()["last_request_at"]
    assert isinstance(value, int)
    return value


@pytest.fixture(scope="module")
def replicas(
    create_database: Callable[[str], str],
    spawn_server: Callable[..., ServerProcess],
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[ServerProcess, ServerProcess]:
    """Two processes of one workspace (one database) that share their activity every 0.2 s."""
    database = create_database("ws_activity")
    servers = []
    for name in ("a", "b"):
        server = spawn_server(database, tmp_path_factory.mktemp(f"activity_{name}"), WS_ACTIVITY_FLUSH_SECONDS="0.2")
        server.wait_ready()
        servers.append(server)
    return servers[0], servers[1]


def test_requests_count_the_control_planes_calls_and_pings_do_not(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    server, other = replicas
    # Each replica's start counts as use and reaches the shared row within a flush: wait until they agree.
    wait_until("the replicas' starts to be flushed", lambda: last_use(server) == last_use(other), timeout=10)
    before = last_use(server)
    assert before <= now_ms()
    wait_until("the clock to move past the last use", lambda: now_ms() > before + 50)
    for _ in range(3):
        assert httpx.get(f"{server.base_url}/api/v4/system/ping", timeout=10).status_code == 200
        assert httpx.get(f"{server.base_url}/api/v4/canopy/plan", headers=CONTROL, timeout=10).status_code == 200
    assert last_use(server) == before, "pings and control calls are not use"

    sent = now_ms()
    config = httpx.get(f"{server.base_url}/api/v4/config/client", params={"format": "old"}, timeout=10)
    assert config.status_code == 200
    assert sent <= last_use(server) <= now_ms()
    refused = httpx.get(f"{server.base_url}/api/v4/canopy/activity", timeout=10)
    assert refused.status_code == 401 and refused.json()["id"] == "api.canopy.control_token.app_error"


def test_an_open_websocket_is_use_until_it_closes(replicas: tuple[ServerProcess, ServerProcess]) -> None:
    server, _ = replicas
    socket = WsClient(server.base_url)
    try:
        opened = now_ms()
        wait_until("the open WebSocket to count as use", lambda: last_use(server) > opened + 300, timeout=10)
    finally:
        socket.close()
    closed = last_use(server)
    wait_until("the clock to move past the close", lambda: now_ms() > closed + 200)
    assert last_use(server) == closed, "a closed WebSocket is use no more"


def test_processes_of_one_workspace_agree_through_its_database(replicas: tuple[ServerProcess, ServerProcess]) -> None:
    first, second = replicas
    wait_until("the clock to move past the second's own last use", lambda: now_ms() > last_use(second) + 50)
    sent = now_ms()
    assert httpx.get(f"{first.base_url}/api/v4/users/me", timeout=10).status_code == 401
    wait_until("the second process to see the first one's use", lambda: last_use(second) >= sent, timeout=10)
    assert last_use(second) <= now_ms()
