"""Hibernation and wake on the local runtime: a control plane on a database of its own, real workers (started by
each test, stopped when it ends), real workspace servers, and the API as a real ``canopy api`` process whose proxy
serves ``/w/<slug>`` (clients need a real HTTP server). Workspaces change state only through product paths: the
API, the CLI, the idle hibernation and requests."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from mattermostdriver import Driver

from control_plane.reconciler.queue import Cause, defer_reconcile
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Workspace
from tests.reconciler.conftest import PASSWORD, ROOT, Plane, plane_context, server_pids
from tests.waiting import wait_until
from tests.web.conftest import free_port

STARTUP_TIMEOUT = 60.0
RUNBOOK = ROOT / "runbooks" / "hibernation-does-not-wake.md"


def runbook_commands() -> list[str]:
    """The shell commands of the hibernation runbook's code blocks, in order."""
    blocks = re.findall(r"```sh\n(.*?)```", RUNBOOK.read_text(), flags=re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


@dataclass
class Api:
    """A ``canopy api`` process (with its proxy) of the plane."""

    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def address(self, slug: str) -> str:
        """The workspace's every-client address, by loopback IP."""
        return f"{self.base}/w/{slug}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_api(plane: Plane, port: int | None = None, extra_env: dict[str, str] | None = None) -> Api:
    """``canopy api`` on ``port`` (a free one by default) with the plane's environment plus ``extra_env``."""
    port = port or free_port()
    log_path = plane.log_dir / f"api-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "control_plane.cli", "api", "--host", "127.0.0.1", "--port", str(port)],
            env=plane.env | (extra_env or {}),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    api = Api(port, process, log_path)

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"canopy api exited with {process.returncode}:\n{api.log()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{api.base}/readyz", timeout=2).status_code == 200
        return False

    try:
        wait_until(lambda: f"canopy api to be ready\n{api.log()[-3000:]}", ready, STARTUP_TIMEOUT)
    except BaseException:
        api.stop()
        raise
    return api


def condition(ws: Workspace, type_: str) -> tuple[str, str] | None:
    found = [(c["status"], c["reason"]) for c in ws.conditions if c["type"] == type_]
    return found[0] if found else None


def serving(ws: Workspace) -> bool:
    """Converged at its current generation, its server answering."""
    return ws.observed_generation == ws.generation and condition(ws, "Available") == ("True", "Ready")


def asleep(ws: Workspace) -> bool:
    """Hibernated and its server stopped."""
    return ws.lifecycle_state == Lifecycle.hibernated and condition(ws, "ComputeReady") == ("False", "Hibernated")


@dataclass
class Sleepy:
    """The plane, its API process, and what the tests do with them."""

    plane: Plane
    api: Api
    apis: list[Api] = field(default_factory=list)

    def provision(self, slugs: list[str], timeout: float = 240.0) -> list[uuid.UUID]:
        """New workspaces, provisioned by the workers (one must run) into their trial."""
        ids = [self.plane.create_workspace(slug) for slug in slugs]
        for workspace_id in ids:
            defer_reconcile(workspace_id, Cause.signup)
        for workspace_id in ids:
            self.plane.wait_for(workspace_id, lambda ws: ws.lifecycle_state == Lifecycle.trialing, timeout)
        return ids

    def hibernate(self, workspace_id: uuid.UUID) -> None:
        """Hibernate through the API, as an operator; wait until its server is gone."""
        response = self.plane.as_operator("POST", f"/api/v1/workspaces/{workspace_id}/hibernate")
        assert response.status_code == 202, response.text
        self.plane.wait_for(workspace_id, asleep)
        wait_until("no server process", lambda: server_pids(self.plane.runtime_dir(workspace_id)) == [])

    def start_api(self, **extra_env: str) -> Api:
        """Another API process of the plane (stopped at the end of the module)."""
        api = start_api(self.plane, extra_env=extra_env)
        self.apis.append(api)
        return api

    def driver(self, slug: str, api: Api | None = None) -> Driver:
        """``mattermostdriver`` for the workspace's owner at its path address (not logged in yet)."""
        return Driver(
            {
                "url": "127.0.0.1",
                "port": (api or self.api).port,
                "scheme": "http",
                "basepath": f"/w/{slug}/api/v4",
                "login_id": f"{slug}.admin@example.com",
                "password": PASSWORD,
                "timeout": 60,
            }
        )

    def audit(self, workspace_id: uuid.UUID) -> list[tuple[str, str, dict[str, Any], datetime]]:
        """(action, actor, after, when) of the workspace's audit entries, oldest first."""
        with self.plane.admin() as conn:
            rows = conn.execute(
                "SELECT action, actor, after, occurred_at FROM audit_entries WHERE target_id = %s ORDER BY id",
                [str(workspace_id)],
            ).fetchall()
        return [(action, actor, after, when) for action, actor, after, when in rows]


@pytest.fixture(scope="module")
def sleepy(create_database: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sleepy]:
    port = free_port()
    with plane_context(
        create_database, tmp_path_factory, "hibernation", CANOPY_PUBLIC_URL=f"http://localhost:{port}"
    ) as plane:
        api = start_api(plane, port)
        context = Sleepy(plane, api)
        try:
            yield context
        finally:
            for other in [api, *context.apis]:
                other.stop()


@pytest.fixture(autouse=True)
def _workers_end_with_their_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Stop the workers a test started when it ends: the next test (in any order) starts its own."""
    yield
    if "sleepy" in request.fixturenames:
        request.getfixturevalue("sleepy").plane.stop_workers()
