"""A control plane on the local runtime whose workers export workspaces, on a clock the tests move (download links
expire). Workspaces are provisioned by the workers and filled through their Mattermost API."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from control_plane.workspaces.lifecycle import Lifecycle
from tests.reconciler.conftest import PASSWORD, Plane, clocked_env, plane_context
from tests.waiting import wait_until


@dataclass
class ExportPlane:
    """The control plane and its clock file."""

    plane: Plane
    clock_file: Path
    seen: list[dict[str, Any]] = field(default_factory=list)  # the reads of the last wait_finished

    def workspace(self, slug: str) -> tuple[uuid.UUID, httpx.Client]:
        """A workspace provisioned by the workers, and an API client of its server logged in as its owner."""
        if not self.plane.workers:
            self.plane.start_worker()
        workspace_id = self.plane.create_workspace(slug)
        ws = self.plane.wait_state(workspace_id, Lifecycle.trialing, timeout=90)
        client = httpx.Client(base_url=f"http://127.0.0.1:{ws.outputs['port']}/api/v4", timeout=30)
        login = client.post("/users/login", json={"login_id": f"{slug}.admin@example.com", "password": PASSWORD})
        assert login.status_code == 200, login.text
        client.headers["Authorization"] = f"Bearer {login.headers['Token']}"
        return workspace_id, client

    def exports(self, workspace_id: uuid.UUID, path: str = "", method: str = "GET", **kwargs: Any) -> httpx.Response:
        """``method /api/v1/workspaces/<id>/exports<path>`` as the workspace's owner (or ``headers=``)."""
        kwargs.setdefault("headers", self.plane.owner_headers[workspace_id])
        return self.plane.api.request(method, f"/api/v1/workspaces/{workspace_id}/exports{path}", **kwargs)

    def wait_finished(self, workspace_id: uuid.UUID, export_id: str, timeout: float = 120.0) -> dict[str, Any]:
        """The export once it is completed or failed; every read on the way goes to :attr:`seen`."""
        found: dict[str, Any] = {}

        def finished() -> bool:
            response = self.exports(workspace_id, f"/{export_id}")
            assert response.status_code == 200, response.text
            found.update(response.json())
            self.seen.append(response.json())
            return found["state"] in ("completed", "failed")

        self.seen.clear()
        wait_until(lambda: f"export {export_id} ({found.get('state')})\n{self.plane.worker_logs()}", finished, timeout)
        return found


@pytest.fixture(scope="module")
def exporting(create_database: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExportPlane]:
    clock_file = tmp_path_factory.mktemp("clock") / "offset"
    env = clocked_env(clock_file)
    with plane_context(create_database, tmp_path_factory, "exports", **env) as plane:
        yield ExportPlane(plane, clock_file)


@pytest.fixture(autouse=True)
def _workers_end_with_their_test(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "exporting" in request.fixturenames:
        request.getfixturevalue("exporting").plane.stop_workers()
