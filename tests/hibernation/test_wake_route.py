"""The wake route a sleeping workspace's Ingress falls back to on Kubernetes (``/wake/<slug>/<path>``), exercised on
the local runtime, where the same route serves: it wakes the workspace, holds the request until it serves, then
sends the client back to the same address with ``307`` (method and body kept); a WebSocket is held, then closed as
a restarting service so that the client connects again."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from control_plane.workspaces.lifecycle import Lifecycle
from tests.hibernation.conftest import Sleepy, serving
from tests.reconciler.conftest import PASSWORD

pytestmark = pytest.mark.slow

PROBLEM = "application/problem+json"


def test_the_wake_route_wakes_holds_and_sends_the_client_back(sleepy: Sleepy) -> None:
    slug = f"route-{uuid.uuid4().hex[:6]}"
    sleepy.plane.start_worker()
    [workspace_id] = sleepy.provision([slug])
    sleepy.hibernate(workspace_id)
    login = {"login_id": f"{slug}.admin@example.com", "password": PASSWORD}
    public = sleepy.plane.row(workspace_id).endpoint_url

    # As the Ingress rewrites it: the path after the slug, the query string kept.
    held = httpx.post(f"{sleepy.api.base}/wake/{slug}/api/v4/users/login?from=ingress", json=login, timeout=60)
    assert held.status_code == 307, held.text
    assert held.headers["location"] == f"{public}/api/v4/users/login?from=ingress"
    assert held.headers["cache-control"] == "no-store"
    ws = sleepy.plane.row(workspace_id)
    assert serving(ws) and ws.lifecycle_state == Lifecycle.trialing
    # The client sends the same request again, to the workspace (here by its loopback address).
    again = httpx.post(
        f"{sleepy.api.address(slug)}/api/v4/users/login", params={"from": "ingress"}, json=login, timeout=60
    )
    assert again.status_code == 200 and again.headers.get("Token"), again.text

    # Awake already (an ingress still routing here): a pause, then the same answer.
    started = time.monotonic()
    stale = httpx.get(f"{sleepy.api.base}/wake/{slug}/api/v4/system/ping", timeout=60)
    assert stale.status_code == 307 and stale.headers["location"] == f"{public}/api/v4/system/ping"
    assert time.monotonic() - started >= 1.0
    assert [a for a, _, _, _ in sleepy.audit(workspace_id) if a == "workspace.wake"] == ["workspace.wake"]

    # A WebSocket through a sleeping Ingress: held until the workspace serves, then closed (1012) to reconnect.
    sleepy.hibernate(workspace_id)
    with (
        connect(f"ws://127.0.0.1:{sleepy.api.port}/wake/{slug}/api/v4/websocket", open_timeout=60) as socket,
        pytest.raises(ConnectionClosed) as closed,
    ):
        socket.recv(timeout=60)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    assert serving(sleepy.plane.row(workspace_id))

    # Nothing to wake: a 404 problem, and nothing else is told.
    for path in (f"/wake/no-such-{slug}/api/v4/system/ping", "/wake/NOT%20A%20SLUG/api/v4/system/ping"):
        missing = httpx.get(f"{sleepy.api.base}{path}", timeout=30)
        assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM, (path, missing.text)
