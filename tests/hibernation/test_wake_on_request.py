"""A request for a hibernated workspace wakes it into the state it was hibernated from and is answered once it is up,
through the control plane's proxy: never an error, one wake however many requests arrive at once (in several API
processes), a WebSocket too; only a wake slower than the wake timeout answers 503 with Retry-After (see
test_runbook.py)."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from websockets.sync.client import connect

from control_plane.workspaces.lifecycle import Lifecycle
from tests.hibernation.conftest import Sleepy, serving
from tests.reconciler.conftest import PASSWORD, server_pids

pytestmark = pytest.mark.slow


def wakes(sleepy: Sleepy, workspace_id: uuid.UUID) -> list[tuple[str, str]]:
    return [(action, actor) for action, actor, _, _ in sleepy.audit(workspace_id) if action == "workspace.wake"]


def test_concurrent_first_requests_wake_the_workspace_once(sleepy: Sleepy) -> None:
    slug = f"crowd-{uuid.uuid4().hex[:6]}"
    sleepy.plane.start_worker()
    [workspace_id] = sleepy.provision([slug])
    sleepy.hibernate(workspace_id)
    generation = sleepy.plane.row(workspace_id).generation
    second = sleepy.start_api()

    def ping(index: int) -> tuple[int, float, str]:
        api = sleepy.api if index % 2 else second
        started = time.monotonic()
        response = httpx.get(f"{api.address(slug)}/api/v4/system/ping", timeout=60)
        return response.status_code, time.monotonic() - started, response.text

    with ThreadPoolExecutor(max_workers=24) as pool:
        answers = list(pool.map(ping, range(48)))
    assert [status for status, _, _ in answers] == [200] * 48, answers
    print(f"answers after {min(t for _, t, _ in answers):.2f}-{max(t for _, t, _ in answers):.2f} s")

    ws = sleepy.plane.row(workspace_id)
    assert ws.lifecycle_state == Lifecycle.trialing and ws.resume_state is None
    assert ws.generation == generation + 1, "woken once"
    assert wakes(sleepy, workspace_id) == [("workspace.wake", "request")]
    assert serving(ws) and server_pids(sleepy.plane.runtime_dir(workspace_id)) == [ws.outputs["pid"]]


def test_requests_right_after_a_hibernation_wake_it_http_and_websocket(sleepy: Sleepy) -> None:
    """The proxy knew the server's port a moment ago (it keeps it 1 s): the request finds it gone, looks again and
    waits for the wake; a WebSocket's upgrade likewise, then it is relayed."""
    slug = f"socket-{uuid.uuid4().hex[:6]}"
    sleepy.plane.start_worker()
    [workspace_id] = sleepy.provision([slug])
    login = httpx.post(
        f"{sleepy.api.address(slug)}/api/v4/users/login",
        json={"login_id": f"{slug}.admin@example.com", "password": PASSWORD},
        timeout=60,
    )
    assert login.status_code == 200, login.text
    sleepy.hibernate(workspace_id)
    me = httpx.get(
        f"{sleepy.api.address(slug)}/api/v4/users/me",
        headers={"Authorization": f"Bearer {login.headers['Token']}"},
        timeout=60,
    )
    assert me.status_code == 200 and me.json()["username"] == login.json()["username"], me.text

    sleepy.hibernate(workspace_id)
    # The session outlives the sleep; the WebSocket's upgrade is held until the workspace serves, then relayed.
    challenge = {"seq": 1, "action": "authentication_challenge", "data": {"token": login.headers["Token"]}}
    with connect(f"ws://127.0.0.1:{sleepy.api.port}/w/{slug}/api/v4/websocket", open_timeout=60) as socket:
        socket.send(json.dumps(challenge))
        received = [json.loads(socket.recv(timeout=30)) for _ in range(2)]  # the challenge's reply and hello
    assert {"status": "OK", "seq_reply": 1} in received, received
    assert [m["event"] for m in received if "event" in m] == ["hello"], received
    assert serving(sleepy.plane.row(workspace_id))
    assert wakes(sleepy, workspace_id) == [("workspace.wake", "request")] * 2
