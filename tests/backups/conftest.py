"""A control plane on the local runtime whose workers back workspaces up and restore them; workspaces are
provisioned by the workers and written to with ``mattermostdriver``."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from mattermostdriver import Driver
from sqlalchemy import select

from control_plane.audit.models import AuditEntry
from control_plane.core import db as core_db
from control_plane.workspaces.lifecycle import Lifecycle
from tests.reconciler.conftest import PASSWORD, Plane, plane_context
from tests.waiting import wait_until


def audit_actions(target_id: str) -> list[str]:
    """The audited actions on ``target_id``, oldest first."""
    with core_db.session_scope() as session:
        query = select(AuditEntry.action).where(AuditEntry.target_id == target_id).order_by(AuditEntry.id)
        return list(session.scalars(query))


@dataclass
class BackupPlane:
    """The control plane, with helpers for the backup and restore routes."""

    plane: Plane

    def workspace(self, slug: str) -> uuid.UUID:
        """A workspace provisioned by the workers (trialing, its server up)."""
        if not self.plane.workers:
            self.plane.start_worker()
        workspace_id = self.plane.create_workspace(slug)
        self.serving(workspace_id)
        return workspace_id

    def serving(self, workspace_id: uuid.UUID, timeout: float = 120.0) -> None:
        """Wait until the workspace is trialing, reconciled since and available."""
        self.plane.wait_for(
            workspace_id,
            lambda ws: (
                ws.lifecycle_state == Lifecycle.trialing
                and ws.observed_generation >= ws.generation
                and any(c["type"] == "Available" and c["status"] == "True" for c in ws.conditions or [])
            ),
            timeout,
        )

    def driver(self, workspace_id: uuid.UUID, login_id: str) -> Driver:
        """``mattermostdriver`` on the workspace's server, logged in."""
        port = int(self.plane.row(workspace_id).outputs["port"])
        driver = Driver(
            {"url": "127.0.0.1", "port": port, "scheme": "http", "login_id": login_id, "password": PASSWORD}
        )
        driver.login()
        return driver

    def call(
        self,
        workspace_id: uuid.UUID,
        path: str = "",
        method: str = "GET",
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """``method /api/v1/workspaces/<id>/backups<path>`` as the workspace's owner (or ``headers``)."""
        return self.plane.api.request(  # type: ignore[arg-type]
            method,
            f"/api/v1/workspaces/{workspace_id}/backups{path}",
            headers=headers or self.plane.owner_headers[workspace_id],
            **kwargs,
        )

    def back_up(self, workspace_id: uuid.UUID) -> dict[str, Any]:
        """A manual backup, once completed."""
        created = self.call(workspace_id, method="POST")
        assert created.status_code == 202, created.text
        return self.wait_backup(workspace_id, created.json()["id"])

    def wait_backup(self, workspace_id: uuid.UUID, backup_id: str) -> dict[str, Any]:
        found: dict[str, Any] = {}

        def finished() -> bool:
            found.update(self.call(workspace_id, f"/{backup_id}").json())
            return found["state"] in ("completed", "failed")

        wait_until(lambda: f"backup {found}\n{self.plane.worker_logs()}", finished, 120)
        assert found["state"] == "completed", found
        return found

    def wait_restore(self, workspace_id: uuid.UUID, backup_id: str) -> dict[str, Any]:
        found: dict[str, Any] = {}

        def finished() -> bool:
            found.update(self.call(workspace_id, f"/{backup_id}/restore").json())
            return found["state"] in ("completed", "failed")

        wait_until(lambda: f"restore {found}\n{self.plane.worker_logs()}", finished, 180)
        return found


@pytest.fixture(scope="module")
def backing(create_database: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackupPlane]:
    with plane_context(create_database, tmp_path_factory, "backups", CANOPY_DEV_MODE="true") as plane:
        yield BackupPlane(plane)


@pytest.fixture(autouse=True)
def _workers_end_with_their_test(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "backing" in request.fixturenames:
        request.getfixturevalue("backing").plane.stop_workers()
