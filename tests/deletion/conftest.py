"""Delayed deletion on the local runtime: a control plane on a database of its own, real workers (started by each
test, stopped when it ends), real workspace servers, a clock the tests move (a deletion's grace period passes).
Workspaces change state only through product paths: the API and the CLI."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from mattermostdriver import Driver

from control_plane.core.clock import advance, utcnow
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Tier, Workspace
from tests.reconciler.conftest import PASSWORD, Plane, clocked_env, plane_context, server_pids


@dataclass
class DeletionPlane:
    """The control plane and its clock file."""

    plane: Plane
    clock_file: Path

    def advance(self, by: timedelta) -> datetime:
        """Move every process's clock forward; returns the new now."""
        advance(self.clock_file, by)
        return utcnow()

    def workspace(self, slug: str, tier: Tier = Tier.professional) -> uuid.UUID:
        """A workspace provisioned by the workers (Professional: trialing; Enterprise: active) and serving."""
        if not self.plane.workers:
            self.plane.start_worker()
        workspace_id = self.plane.create_workspace(slug, tier)
        self.plane.wait_for(workspace_id, serving, timeout=90)
        return workspace_id

    def driver(self, workspace_id: uuid.UUID, login_slug: str | None = None) -> Driver:
        """``mattermostdriver`` on the workspace's server, logged in as its owner (the owner of the workspace at
        ``login_slug``, for a restored clone)."""
        ws = self.plane.row(workspace_id)
        driver = Driver(
            {
                "url": "127.0.0.1",
                "port": int(ws.outputs["port"]),
                "scheme": "http",
                "login_id": f"{login_slug or ws.slug}.admin@example.com",
                "password": PASSWORD,
            }
        )
        driver.login()
        return driver

    def call(self, workspace_id: uuid.UUID, method: str, path: str = "", **kwargs: Any) -> httpx.Response:
        """``method /api/v1/workspaces/<id><path>`` as the workspace's owner (or ``headers=``)."""
        kwargs.setdefault("headers", self.plane.owner_headers[workspace_id])
        return self.plane.api.request(method, f"/api/v1/workspaces/{workspace_id}{path}", **kwargs)

    def stopped(self, workspace_id: uuid.UUID) -> Workspace:
        """The workspace once the reconciler has stopped it and waits for its purge date."""
        return self.plane.wait_for(workspace_id, lambda ws: waiting_for_purge(ws) and not self.server_up(ws.id))

    def server_up(self, workspace_id: uuid.UUID) -> bool:
        return bool(server_pids(self.plane.runtime_dir(workspace_id)))


def serving(ws: Workspace) -> bool:
    """Running, reconciled since its last change, its server's port known."""
    return (
        ws.lifecycle_state in (Lifecycle.trialing, Lifecycle.active)
        and ws.observed_generation >= ws.generation
        and "port" in (ws.outputs or {})
    )


def waiting_for_purge(ws: Workspace) -> bool:
    """Pending deletion, reconciled (server stopped), its next attempt the purge date."""
    return (
        ws.lifecycle_state == Lifecycle.pending_deletion
        and ws.observed_generation >= ws.generation
        and ws.next_attempt_at is not None
        and ws.next_attempt_at == ws.purge_after
    )


@pytest.fixture(scope="module")
def deleting(
    create_database: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DeletionPlane]:
    clock_file = tmp_path_factory.mktemp("clock") / "offset"
    env = clocked_env(clock_file, CANOPY_HIBERNATE_IDLE_SECONDS="0")
    with plane_context(create_database, tmp_path_factory, "deletion", **env) as plane:
        yield DeletionPlane(plane, clock_file)


@pytest.fixture(autouse=True)
def _workers_end_with_their_test(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "deleting" in request.fixturenames:
        request.getfixturevalue("deleting").plane.stop_workers()
