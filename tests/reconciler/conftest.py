"""Fixtures for the reconciler tests: a migrated database, real worker processes, real workspace servers.

Workspaces are made by the services signup uses, and change state only through the API (the lifecycle table).
The workers a test starts are stopped when that test ends, so each test stands alone in any order. Everything
else is stopped at the end of the module: every workspace server under the module's state directory (found
through /proc, whoever started it), and the databases and login roles of every workspace created (roles are
server-wide).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from psycopg import sql
from sqlalchemy.orm import Session

from control_plane.accounts.models import Account, Membership
from control_plane.core import db as core_db
from control_plane.core.authz import Role
from control_plane.core.clock import utcnow
from control_plane.core.migrate import upgrade
from control_plane.core.security import hash_password
from control_plane.core.settings import get_settings
from control_plane.core.task_queue import close_sync_app
from control_plane.organizations import service as organizations
from control_plane.providers.local_slots import SLOTS
from control_plane.tokens import service as tokens
from control_plane.workspaces import service as workspaces
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Tier, Workspace

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"

FAST_ENV = {
    "CANOPY_RECONCILE_RESYNC_SECONDS": "2",
    "CANOPY_DRIFT_SECONDS": "1",
    "CANOPY_REVERIFY_SECONDS": "20",
    "CANOPY_STALLED_WORKER_SECONDS": "3",
    "CANOPY_WORKER_HEARTBEAT_SECONDS": "0.5",
    "CANOPY_BACKOFF_BASE_SECONDS": "0.5",
    "CANOPY_BACKOFF_MAX_SECONDS": "4",
    "CANOPY_WORKSPACE_READY_TIMEOUT_SECONDS": "60",
}


def clocked_env(clock_file: Path, **extra: str) -> dict[str, str]:
    """The environment of a plane on a clock the test moves (dev mode, ``CANOPY_CLOCK_FILE``), with billing's
    periodic runs off, plus ``extra``."""
    return {
        "CANOPY_DEV_MODE": "true",
        "CANOPY_CLOCK_FILE": str(clock_file),
        "CANOPY_BILLING_RUN_SECONDS": "0",
        "CANOPY_BILLING_SEAT_COLLECTION_SECONDS": "0",
        **extra,
    }


def secret_env() -> dict[str, str]:
    """A fresh random secret key and credential key: what a deployment outside dev mode must set."""
    return {
        "CANOPY_SECRET_KEY": secrets.token_urlsafe(32),
        "CANOPY_CREDENTIAL_KEYS": json.dumps([Fernet.generate_key().decode()]),
    }


@functools.cache
def password_hash() -> str:
    """One argon2 hash of :data:`PASSWORD` (hashing is deliberately slow)."""
    return hash_password(PASSWORD)


def server_pids(runtime_dir: Path | str) -> list[int]:
    """Live (non-zombie) workspace-server processes holding ``<runtime_dir>/server.lock`` open."""
    return all_server_pids().get(str(runtime_dir), [])


def all_server_pids() -> dict[str, list[int]]:
    """Live workspace-server processes by runtime directory."""
    found: dict[str, list[int]] = {}
    for pid, rd in _server_processes():
        found.setdefault(rd, []).append(pid)
    return found


def _server_processes() -> list[tuple[int, str]]:
    """(pid, runtime dir) of every workspace-server process: one of ``workspace_server`` (started as itself or
    forked by its fork server) that holds a ``.../runtime/server.lock`` (or ``runtime-b``, the other slot) open."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if proc.joinpath("stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            if b"workspace_server" not in proc.joinpath("cmdline").read_bytes():
                continue
            descriptors = list(proc.joinpath("fd").iterdir())
        except OSError:
            continue
        for fd in descriptors:
            with contextlib.suppress(OSError):
                target = Path(os.readlink(fd))
                if target.name == "server.lock" and target.parent.name in SLOTS:
                    found.append((int(proc.name), str(target.parent)))
                    break
    return found


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@dataclass
class Plane:
    """One module's control plane: database, state directory, workers."""

    url: str
    state_dir: Path
    log_dir: Path
    env: dict[str, str]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    workspace_ids: list[uuid.UUID] = field(default_factory=list)
    owner_headers: dict[uuid.UUID, dict[str, str]] = field(default_factory=dict)
    _api: TestClient | None = None
    _operator: dict[str, str] | None = None

    # -- product paths ------------------------------------------------------------------------
    def create_workspace(self, slug: str, tier: Tier = Tier.professional, email: str | None = None) -> uuid.UUID:
        """A provisioning workspace of a new organization, as the create route makes it; its owner's
        ``Authorization`` headers go to :attr:`owner_headers`."""
        with core_db.session_scope() as session:
            owner = Account(
                email=(email or f"{slug}.admin@example.com").lower(),
                password_hash=password_hash(),
                email_verified_at=utcnow(),
            )
            session.add(owner)
            session.flush()
            org = organizations.add(session, f"Org {slug}", owner, actor="test")
            ws = workspaces.new_workspace(
                session,
                organization_id=org.id,
                slug=slug,
                display_name=f"Team {slug}",
                tier=tier,
                region=None,
                state=Lifecycle.provisioning,
                actor="test",
                initial_admin=(owner.email, owner.password_hash),
            )
            self.owner_headers[ws.id] = self._headers(session, owner.id, Role.owner, org.id)
            self.workspace_ids.append(ws.id)
            return ws.id

    def staff_headers(self, role: Role) -> dict[str, str]:
        """``Authorization`` headers of a new staff account holding ``role``."""
        with core_db.session_scope() as session:
            email = f"{role.value}-{uuid.uuid4().hex[:8]}@canopy.example"
            account = Account(email=email, password_hash="x", staff_role=role)
            session.add(account)
            session.flush()
            return self._headers(session, account.id, role, None)

    def member_headers(self, workspace_id: uuid.UUID, role: Role) -> dict[str, str]:
        """``Authorization`` headers of a new member holding ``role`` in the workspace's organization."""
        with core_db.session_scope() as session:
            ws = session.get(Workspace, workspace_id)
            assert ws is not None
            account = Account(email=f"{role.value}-{uuid.uuid4().hex[:8]}@example.com", password_hash="x")
            session.add(account)
            session.flush()
            session.add(Membership(organization_id=ws.organization_id, account_id=account.id, role=role))
            return self._headers(session, account.id, role, ws.organization_id)

    @staticmethod
    def _headers(
        session: Session, account_id: uuid.UUID, role: Role, organization_id: uuid.UUID | None
    ) -> dict[str, str]:
        _, secret = tokens.issue(
            session, account_id=account_id, role=role, organization_id=organization_id, name="test", actor="test"
        )
        return {"Authorization": f"Bearer {secret}"}

    @property
    def api(self) -> TestClient:
        """The control-plane app, in process, on this module's database."""
        if self._api is None:
            from control_plane.app import create_app

            self._api = TestClient(create_app())
        return self._api

    def as_operator(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """``method path`` on the API as an operator (staff who may hibernate, wake, delete and purge any
        workspace)."""
        if self._operator is None:
            self._operator = self.staff_headers(Role.operator)
        return self.api.request(method, path, headers=self._operator, **kwargs)

    def purge(self, workspace_id: uuid.UUID) -> None:
        """Delete a workspace and purge it at once, as an operator (the reconciler then tears it down)."""
        deleted = self.as_operator("DELETE", f"/api/v1/workspaces/{workspace_id}")
        assert deleted.status_code == 202, deleted.text
        purged = self.as_operator("POST", f"/api/v1/workspaces/{workspace_id}/purge", json={"reason": "test teardown"})
        assert purged.status_code == 202, purged.text

    def close_api(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None

    def row(self, workspace_id: uuid.UUID) -> Workspace:
        with core_db.session_scope() as session:
            ws = session.get(Workspace, workspace_id)
            assert ws is not None
            session.expunge(ws)
            return ws

    def wait_for(
        self, workspace_id: uuid.UUID, predicate: Callable[[Workspace], bool], timeout: float = 60.0
    ) -> Workspace:
        deadline = time.monotonic() + timeout
        while True:
            ws = self.row(workspace_id)
            if predicate(ws):
                return ws
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out; state={ws.lifecycle_state} attempts={ws.reconcile_attempts} "
                    f"error={ws.last_error} conditions={ws.conditions}\n{self.worker_logs()}"
                )
            time.sleep(0.2)

    def wait_state(self, workspace_id: uuid.UUID, state: Lifecycle, timeout: float = 60.0) -> Workspace:
        return self.wait_for(workspace_id, lambda ws: ws.lifecycle_state == state, timeout)

    # -- processes ------------------------------------------------------------------------------
    def start_worker(self, concurrency: int = 4, **extra_env: str) -> subprocess.Popen[bytes]:
        index = len(self.workers)
        log = open(self.log_dir / f"worker-{index}.log", "wb")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "control_plane.reconciler.worker",
                "--concurrency",
                str(concurrency),
                "--name",
                f"test-worker-{index}",
            ],
            env={**self.env, **extra_env},
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.workers.append(proc)
        return proc

    def worker_logs(self, tail: int = 60) -> str:
        out = []
        for path in sorted(self.log_dir.glob("worker-*.log")):
            lines = path.read_text(errors="replace").splitlines()[-tail:]
            out.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(out)

    def runtime_dir(self, workspace_id: uuid.UUID) -> Path:
        return self.state_dir.resolve() / "workspaces" / str(workspace_id) / "runtime"

    def stop_workers(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.workers:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.workers.clear()

    def kill_servers(self) -> None:
        root = str(self.state_dir.resolve())
        for pid, rd in _server_processes():
            if rd.startswith(root + os.sep):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    # -- PostgreSQL ---------------------------------------------------------------------------
    def admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url, autocommit=True)

    def database_exists(self, name: str) -> bool:
        with self.admin() as conn:
            return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None

    def role_exists(self, name: str) -> bool:
        with self.admin() as conn:
            return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]).fetchone() is not None

    def drop_workspace_databases(self) -> None:
        def drop(workspace_id: uuid.UUID) -> None:
            name = sql.Identifier(f"ws_{workspace_id.hex[:12]}")
            with self.admin() as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(name))

        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(drop, self.workspace_ids))


def _reset_in_process_caches() -> None:
    get_settings.cache_clear()
    core_db.reset_engine()
    close_sync_app()


@contextlib.contextmanager
def plane_context(
    create_database: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory, label: str, **extra_env: str
) -> Iterator[Plane]:
    """A control plane on a new database and state directory, configured in this process and for its workers
    (plus ``extra_env``); everything it started is stopped and dropped at the end."""
    url = create_database(label)
    upgrade(url)
    state_dir = tmp_path_factory.mktemp("state")
    log_dir = tmp_path_factory.mktemp("logs")
    overrides = {
        "CANOPY_DATABASE_URL": url,
        "CANOPY_STATE_DIR": str(state_dir),
        **secret_env(),
        **FAST_ENV,
        **extra_env,
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANOPY_")} | overrides
    with pytest.MonkeyPatch.context() as mp:
        for key, value in overrides.items():
            mp.setenv(key, value)
        _reset_in_process_caches()
        p = Plane(url=url, state_dir=state_dir, log_dir=log_dir, env=env)
        try:
            yield p
        finally:
            p.close_api()
            p.stop_workers()
            p.kill_servers()
            p.drop_workspace_databases()
            _reset_in_process_caches()
    _reset_in_process_caches()


@pytest.fixture(scope="module")
def plane(create_database: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    with plane_context(create_database, tmp_path_factory, "reconciler") as p:
        yield p


@pytest.fixture(autouse=True)
def _workers_end_with_their_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Stop the workers a test started when it ends: the next test (in any order) starts its own."""
    yield
    if "plane" in request.fixturenames:
        request.getfixturevalue("plane").stop_workers()
