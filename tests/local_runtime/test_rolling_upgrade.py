"""A rollout across 20 workspaces of the local runtime, with zero downtime: a real ``canopy api`` (its proxy serves
``/w/<slug>``) and a real worker roll a second release of the workspace server (a copy that says another version,
run by its command) in a canary and waves, while ``mattermostdriver`` clients keep posting to every workspace and
hold its WebSocket open. Each switch is blue/green: the new server answers before the old one stops; no request
fails; every acknowledged post is there afterwards; every WebSocket client reconnects and catches up."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from mattermostdriver import Driver
from mattermostdriver.websocket import Websocket

from control_plane.core.authz import Role
from control_plane.providers.local import process_gone
from control_plane.reconciler.queue import Cause, defer_reconcile
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Tier
from tests.api_process import canopy_api, free_port
from tests.local_runtime.builds import build_release
from tests.reconciler.conftest import PASSWORD, Plane, plane_context
from tests.waiting import wait_until
from workspace_server.release import SCHEMA_REVISION

pytestmark = pytest.mark.slow

WORKSPACES = 20
NEXT = "0.2.0-rolling"
PLAN = {
    "canaries": 1,
    "canary_soak_seconds": 1,
    "first_wave": 4,
    "growth": 2.0,
    "max_wave": 8,
    "soak_seconds": 1,
    "max_per_cell": 20,
    "failure_budget": 0,
    "upgrade_timeout_seconds": 240,
    "max_p99_seconds": 30,
}
WAVES = [1, 4, 8, 7]
POST_PACE_SECONDS = 0.2
CLOSED_BY_THE_SERVER = re.compile(r"received (1000|1001|1012)\b")


@dataclass
class Fleet:
    plane: Plane
    url: str
    port: int


@pytest.fixture(scope="module")
def fleet(create_database: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    port = free_port()
    env = {
        "CANOPY_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "CANOPY_ROLLOUT_SECONDS": "1",
        "CANOPY_REVERIFY_SECONDS": str(10**9),  # no re-verification passes: the rollout's reconciles only
    }
    with (
        plane_context(create_database, tmp_path_factory, "rolling", **env) as plane,
        canopy_api(plane.env, port, plane.log_dir / "api.log") as url,
    ):
        yield Fleet(plane, url, port)


@pytest.fixture
def clients(fleet: Fleet) -> Iterator[list[Client]]:
    """One client per workspace (started by the test); every one stopped at the end, whatever happened."""
    made = [Client(f"roll-{i:02d}", fleet.port) for i in range(WORKSPACES)]
    yield made
    for client in made:
        client.stop_posting()
        client.disconnect()


@dataclass
class Client:
    """One workspace's users: a poster (its acknowledged posts) and a WebSocket reader (what it saw, and how)."""

    slug: str
    port: int
    channel_id: str = ""
    acknowledged: dict[str, str] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    last_seen: int = 0
    hellos: int = 0
    caught_up: list[int] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    socket: Websocket | None = None

    def driver(self) -> Driver:
        driver = Driver(
            {
                "url": "127.0.0.1",
                "port": self.port,
                "scheme": "http",
                "basepath": f"/w/{self.slug}/api/v4",
                "login_id": f"{self.slug}.admin@example.com",
                "password": PASSWORD,
                "timeout": 30,
                "keepalive": True,
                "keepalive_delay": 0.2,
            }
        )
        driver.login()
        return driver

    def start(self) -> None:
        poster, reader = self.driver(), self.driver()
        self.channel_id = poster.channels.get_channel_by_name_and_team_name(self.slug, "town-square")["id"]
        self.socket = Websocket({**reader.options, "timeout": 1}, reader.client.token)
        self.threads = [
            threading.Thread(target=self._post, args=(poster,), daemon=True),
            threading.Thread(target=asyncio.run, args=(self.socket.connect(self._event(reader)),), daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def _post(self, driver: Driver) -> None:
        """Post until told to stop, paced; every failure is kept."""
        index = 0
        while not self.stopping.wait(POST_PACE_SECONDS):
            message = f"{self.slug} #{index}"
            try:
                post = driver.posts.create_post({"channel_id": self.channel_id, "message": message})
                self.acknowledged[post["id"]] = message
            except Exception as exc:
                self.failures.append(f"post {message}: {type(exc).__name__}: {exc}")
            index += 1

    def _event(self, driver: Driver) -> Callable[[str], Any]:
        async def handle(raw: str) -> None:
            message = json.loads(raw)
            if message.get("event") == "posted":
                self._saw(json.loads(message["data"]["post"]))
            elif message.get("event") == "hello":
                self.hellos += 1
                if self.hellos > 1:  # reconnected: fetch what was posted since the last post seen
                    since = self.last_seen
                    posts = driver.posts.get_posts_for_channel(self.channel_id, params={"since": since})["posts"]
                    for post in posts.values():
                        self._saw(post)
                    self.caught_up.append(len(posts))

        return handle

    def _saw(self, post: dict[str, Any]) -> None:
        self.seen.add(post["id"])
        self.last_seen = max(self.last_seen, int(post["create_at"]))

    def stop_posting(self) -> None:
        self.stopping.set()
        if self.threads:
            self.threads[0].join(30)

    def disconnect(self) -> None:
        if self.socket is not None:
            self.socket.disconnect()
            self.threads[1].join(30)


class SocketWarnings(logging.Handler):
    """mattermostdriver's WebSocket warnings (it logs each lost connection before reconnecting)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@dataclass
class Switch:
    """When one workspace's new server first answered with the new release, and when its old server was gone."""

    old_pid: int
    new_slot: Path
    new_answered_at: float | None = None
    old_gone_at: float | None = None


def watch_switches(switches: list[Switch], done: threading.Event) -> None:
    """Sample every workspace's slots until ``done`` (paced: each sample pings the new servers not seen yet)."""
    while not done.wait(0.05):
        now = time.monotonic()
        for switch in switches:
            if switch.new_answered_at is None and _answers_with(switch.new_slot, NEXT):
                switch.new_answered_at = now
            if switch.old_gone_at is None and process_gone(switch.old_pid):
                switch.old_gone_at = now


def _answers_with(slot: Path, release: str) -> bool:
    try:
        port = int((slot / "server.port").read_text())
        answer = httpx.get(f"http://127.0.0.1:{port}/api/v4/system/ping", timeout=1)
    except (OSError, ValueError, httpx.HTTPError):
        return False
    return answer.status_code == 200 and answer.json().get("CanopyRelease") == release


def provision(plane: Plane, slugs: list[str]) -> list[uuid.UUID]:
    ids = [plane.create_workspace(slug, Tier.enterprise) for slug in slugs]
    for workspace_id in ids:
        defer_reconcile(workspace_id, Cause.signup)
    for workspace_id in ids:
        plane.wait_state(workspace_id, Lifecycle.active, timeout=300)
    return ids


def test_a_rollout_across_twenty_workspaces_loses_no_request(
    fleet: Fleet, clients: list[Client], tmp_path_factory: pytest.TempPathFactory
) -> None:
    plane = fleet.plane
    plane.start_worker(concurrency=4)
    ids = provision(plane, [c.slug for c in clients])
    before = {workspace_id: plane.row(workspace_id) for workspace_id in ids}
    assert {ws.observed_release for ws in before.values()} == {"0.1.0"}
    operator = plane.staff_headers(Role.operator)
    command = build_release(tmp_path_factory.mktemp("build"), NEXT)
    published = httpx.post(
        f"{fleet.url}/api/v1/releases",
        headers=operator,
        json={
            "version": NEXT,
            "image": f"canopy/workspace-server:{NEXT}",
            "local_command": command,
            "schema_min": SCHEMA_REVISION,
        },
    )
    assert published.status_code == 201, published.text

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(Client.start, clients))
    wait_until("every WebSocket's hello", lambda: all(c.hellos == 1 for c in clients), timeout=60)
    wait_until(
        lambda: f"posts from every client (failures: {[f for c in clients for f in c.failures][:5]})",
        lambda: all(c.acknowledged for c in clients),
        timeout=60,
    )
    warnings = SocketWarnings()
    logging.getLogger("mattermostdriver.websocket").addHandler(warnings)

    switches = [
        Switch(int(before[i].outputs["pid"]), Path(before[i].outputs["runtime_dir"]).parent / "runtime-b") for i in ids
    ]
    done = threading.Event()
    watcher = threading.Thread(target=watch_switches, args=(switches, done), daemon=True)
    watcher.start()
    try:
        started = httpx.post(
            f"{fleet.url}/api/v1/rollouts",
            headers=operator,
            json={"release": NEXT, "selector": {"workspaces": [str(i) for i in ids]}, "plan": PLAN},
        )
        assert started.status_code == 201, started.text
        rollout = started.json()
        assert [wave["size"] for wave in rollout["waves"]] == WAVES

        def completed() -> bool:
            nonlocal rollout
            rollout = httpx.get(f"{fleet.url}/api/v1/rollouts/{rollout['id']}", headers=operator).json()
            assert rollout["state"] in ("running", "completed"), rollout
            return bool(rollout["state"] == "completed")

        wait_until(lambda: f"the rollout to complete: {rollout}\n{plane.worker_logs()}", completed, timeout=600)
        wait_until("every old server gone", lambda: all(s.old_gone_at is not None for s in switches), timeout=30)
    finally:
        done.set()
        watcher.join(10)
        for client in clients:
            client.stop_posting()
        logging.getLogger("mattermostdriver.websocket").removeHandler(warnings)

    # The rollout: every target succeeded, in the planned waves; every workspace reports the new release.
    assert [(w["size"], w["states"], w["failures"]) for w in rollout["waves"]] == [
        (size, {"succeeded": size}, []) for size in WAVES
    ]
    assert {plane.row(i).observed_release for i in ids} == {NEXT}

    # Blue/green: each new server answered before its old one was gone.
    for switch in switches:
        assert switch.new_answered_at is not None and switch.old_gone_at is not None, switch
        assert switch.new_answered_at < switch.old_gone_at, switch

    # No request failed: no post, and no WebSocket connection other than those the old servers closed.
    assert [f for c in clients for f in c.failures] == []
    assert [m for m in warnings.messages if not CLOSED_BY_THE_SERVER.search(m)] == []

    # Every acknowledged post is there, read back by id.
    def missing(client: Client) -> list[str]:
        driver = client.driver()
        return [i for i, m in client.acknowledged.items() if driver.posts.get_post(i)["message"] != m]

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert [m for found in pool.map(missing, clients) for m in found] == []

    # Every WebSocket client reconnected, caught up, and saw every acknowledged post.
    wait_until(
        "every client to see every acknowledged post",
        lambda: all(set(c.acknowledged) <= c.seen for c in clients),
        timeout=30,
    )
    for client in clients:
        assert client.hellos >= 2 and len(client.caught_up) == client.hellos - 1, client.slug
    total = sum(len(c.acknowledged) for c in clients)
    print(f"{total} posts acknowledged and read back; {sum(len(c.caught_up) for c in clients)} reconnects caught up")
