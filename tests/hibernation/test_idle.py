"""Idle hibernation on the local runtime: twenty workspaces nobody uses hibernate (no server process left, their
data kept) while one kept busy stays up; a ``mattermostdriver`` login to a hibernated one at its path address
succeeds on the first try (the request wakes it), and the woken workspace gets a whole idle period again before it
hibernates once more."""

from __future__ import annotations

import threading
import uuid

import httpx
import pytest

from control_plane.workspaces.lifecycle import Lifecycle
from tests.hibernation.conftest import Sleepy, asleep
from tests.reconciler.conftest import server_pids
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

IDLE_SECONDS = 3
COUNT = 20


class Busy:
    """Requests to one workspace through the proxy, every 0.2 s, until stopped."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answers: list[int] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=60) as client:
            while not self.stop.wait(0.2):
                self.answers.append(client.get(self.url, params={"format": "old"}).status_code)

    def end(self) -> list[int]:
        self.stop.set()
        self.thread.join(60)
        return self.answers


def test_idle_workspaces_hibernate_a_busy_one_stays_up_and_a_login_wakes_one(sleepy: Sleepy) -> None:
    run = uuid.uuid4().hex[:6]
    slugs = [f"idle{i:02d}-{run}" for i in range(COUNT)]
    busy_slug = f"busy-{run}"
    sleepy.plane.start_worker()
    ids = sleepy.provision([*slugs, busy_slug])
    idle_ids, busy_id = ids[:COUNT], ids[COUNT]
    busy_pid = sleepy.plane.row(busy_id).outputs["pid"]
    busy = Busy(f"{sleepy.api.address(busy_slug)}/api/v4/config/client")
    wait_until("the busy workspace to answer", lambda: 200 in busy.answers)

    sleepy.plane.stop_workers()
    sleepy.plane.start_worker(CANOPY_HIBERNATE_IDLE_SECONDS=str(IDLE_SECONDS))
    for workspace_id in idle_ids:
        sleepy.plane.wait_for(workspace_id, asleep, timeout=180)
    assert all(server_pids(sleepy.plane.runtime_dir(workspace_id)) == [] for workspace_id in idle_ids)
    for workspace_id in idle_ids:
        ws = sleepy.plane.row(workspace_id)
        assert ws.resume_state == Lifecycle.trialing and sleepy.plane.database_exists(ws.outputs["database_name"])
        hibernations = [(a, actor) for a, actor, _, _ in sleepy.audit(workspace_id) if a == "workspace.hibernated"]
        assert hibernations == [("workspace.hibernated", "idle")]

    # Used all along, the busy one stays up: same server, never hibernated.
    busy_row = sleepy.plane.row(busy_id)
    assert busy_row.lifecycle_state == Lifecycle.trialing and busy_row.outputs["pid"] == busy_pid
    assert server_pids(sleepy.plane.runtime_dir(busy_id)) == [busy_pid]
    assert not [a for a, _, _, _ in sleepy.audit(busy_id) if a == "workspace.hibernated"]
    answers = busy.end()
    assert set(answers) == {200}, answers

    # A login to a hibernated workspace succeeds on the first try: the request wakes it.
    slug, workspace_id = slugs[7], idle_ids[7]
    driver = sleepy.driver(slug)
    driver.login()
    [team] = driver.teams.get_user_teams("me")
    channel = driver.channels.get_channel_by_name(team["id"], "town-square")
    driver.posts.create_post({"channel_id": channel["id"], "message": "good morning"})
    ws = sleepy.plane.row(workspace_id)
    assert ws.lifecycle_state == Lifecycle.trialing and ws.resume_state is None
    assert server_pids(sleepy.plane.runtime_dir(workspace_id)) == [ws.outputs["pid"]]
    woken = [(a, actor, when) for a, actor, _, when in sleepy.audit(workspace_id) if a == "workspace.wake"]
    assert [(a, actor) for a, actor, _ in woken] == [("workspace.wake", "request")]

    # Left alone, it hibernates again, a whole idle period after it was woken.
    sleepy.plane.wait_for(workspace_id, asleep, timeout=60)
    again = [when for a, actor, _, when in sleepy.audit(workspace_id) if (a, actor) == ("workspace.hibernated", "idle")]
    assert len(again) == 2 and (again[1] - woken[0][2]).total_seconds() >= IDLE_SECONDS
