"""A control plane on the local runtime whose workers back workspaces up, on a clock the tests move. Workspaces are
provisioned by the workers and filled through their Mattermost API with ``mattermostdriver``; backups are asked for
through the API, and the tests drive the scheduler, retention and drills as the periodic tasks do."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mattermostdriver import Driver

from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Tier
from tests.reconciler.conftest import PASSWORD, Plane, clocked_env, plane_context
from tests.waiting import wait_until

SERVING = (Lifecycle.trialing, Lifecycle.active)


@dataclass
class DrillPlane:
    """The control plane and its clock file."""

    plane: Plane
    clock_file: Path

    def workspace(self, slug: str, tier: Tier = Tier.professional) -> tuple[uuid.UUID, Driver]:
        """A workspace provisioned by the workers, and ``mattermostdriver`` logged in as its owner."""
        if not self.plane.workers:
            self.plane.start_worker()
        workspace_id = self.plane.create_workspace(slug, tier)
        ws = self.plane.wait_for(workspace_id, lambda w: w.lifecycle_state in SERVING, timeout=90)
        driver = Driver(
            {
                "url": "127.0.0.1",
                "port": ws.outputs["port"],
                "scheme": "http",
                "basepath": "/api/v4",
                "login_id": f"{slug}.admin@example.com",
                "password": PASSWORD,
                "timeout": 60,
            }
        )
        driver.login()
        return workspace_id, driver

    def post(self, driver: Driver, count: int) -> None:
        """``count`` posts in the team's town square."""
        team = driver.teams.get_user_teams("me")[0]
        channel = driver.channels.get_channel_by_name(team["id"], "town-square")
        for i in range(count):
            driver.posts.create_post({"channel_id": channel["id"], "message": f"message {i} {uuid.uuid4().hex}"})

    def back_up(self, workspace_id: uuid.UUID) -> dict[str, Any]:
        """A manual backup asked for by the owner through the API, once completed."""
        response = self.plane.api.post(
            f"/api/v1/workspaces/{workspace_id}/backups", headers=self.plane.owner_headers[workspace_id]
        )
        assert response.status_code == 202, response.text
        return self.wait_completed(workspace_id, response.json()["id"])

    def backups(self, workspace_id: uuid.UUID) -> list[tuple[str, str, str]]:
        """(kind, state, id) of the workspace's backups, oldest first."""
        with self.plane.admin() as conn:
            rows = conn.execute(
                "SELECT kind, state, id::text FROM workspace_backups WHERE workspace_id = %s ORDER BY created_at",
                [workspace_id],
            ).fetchall()
        return [(str(kind), str(state), str(backup_id)) for kind, state, backup_id in rows]

    def wait_completed(self, workspace_id: uuid.UUID, backup_id: str, timeout: float = 120.0) -> dict[str, Any]:
        found: dict[str, Any] = {}

        def completed() -> bool:
            response = self.plane.api.get(
                f"/api/v1/workspaces/{workspace_id}/backups/{backup_id}",
                headers=self.plane.owner_headers[workspace_id],
            )
            assert response.status_code == 200, response.text
            found.update(response.json())
            assert found["state"] != "failed", found
            return bool(found["state"] == "completed")

        wait_until(lambda: f"backup {backup_id} ({found.get('state')})\n{self.plane.worker_logs()}", completed, timeout)
        return found


@pytest.fixture(scope="module")
def drilling(create_database: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[DrillPlane]:
    clock_file = tmp_path_factory.mktemp("clock") / "offset"
    env = clocked_env(
        clock_file,
        CANOPY_BACKUP_SCHEDULE_SECONDS="0",  # the tests run the scheduler and retention themselves
        CANOPY_BACKUP_DRILL_SECONDS="0",
        CANOPY_HIBERNATE_IDLE_SECONDS="0",
    )
    with plane_context(create_database, tmp_path_factory, "drills", **env) as plane:
        yield DrillPlane(plane, clock_file)


@pytest.fixture(autouse=True)
def _workers_end_with_their_test(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "drilling" in request.fixturenames:
        request.getfixturevalue("drilling").plane.stop_workers()
