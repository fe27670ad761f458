"""One worker provisions a workspace end to end, supervises its server, hibernates, wakes and deletes it."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from control_plane.reconciler.queue import defer_reconcile
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Workspace
from tests.reconciler.conftest import PASSWORD, Plane, pid_alive, server_pids

pytestmark = pytest.mark.slow

CONDITIONS = {"DatabaseReady", "StorageReady", "ComputeReady", "DnsReady", "Available"}
EMAIL = "Jane.Doe+chat@example.com"


def _ping(port: int) -> int:
    return httpx.get(f"http://127.0.0.1:{port}/api/v4/system/ping", timeout=5).status_code


def _login(port: int, password: str) -> httpx.Response:
    return httpx.post(
        f"http://127.0.0.1:{port}/api/v4/users/login", json={"login_id": EMAIL, "password": password}, timeout=10
    )


def _condition(ws: Workspace, type_: str) -> tuple[str, str] | None:
    found = [(c["status"], c["reason"]) for c in ws.conditions if c["type"] == type_]
    return found[0] if found else None


def test_provision_supervise_hibernate_and_delete(plane: Plane) -> None:
    ws_id = plane.create_workspace("acme", email=EMAIL)
    name = f"ws_{ws_id.hex[:12]}"
    runtime_dir = plane.runtime_dir(ws_id)
    plane.start_worker()
    started = time.monotonic()
    defer_reconcile(ws_id)

    ws = plane.wait_state(ws_id, Lifecycle.trialing)
    print(f"provisioned in {time.monotonic() - started:.1f}s")
    assert {c["type"]: c["status"] for c in ws.conditions} == dict.fromkeys(CONDITIONS, "True")
    assert ws.endpoint_url == "http://localhost:8000/w/acme"
    assert ws.trial_ends_at is not None and ws.reconcile_attempts == 0 and ws.last_error is None
    assert ws.observed_generation == ws.generation and ws.last_reconciled_at is not None
    assert ws.initial_admin_password_hash is None, "the control plane forgets the hash once handed over"
    assert ws.outputs["database_name"] == name and ws.outputs["database_role"] == name
    assert ws.outputs["created"] == {"role": 1, "database": 1, "storage": 1, "server": 1, "initial_admin": 1}
    port, pid = ws.outputs["port"], ws.outputs["pid"]
    assert _ping(port) == 200
    assert server_pids(runtime_dir) == [pid]

    login = _login(port, PASSWORD)
    assert login.status_code == 200, login.text
    assert login.headers.get("Token")
    assert login.json()["username"] == "jane.doe"
    assert _login(port, "wrong password").status_code == 401

    # The workspace role has its own database and cannot open the control-plane database nor the server's own.
    with plane.admin() as conn:
        row = conn.execute(
            "SELECT has_database_privilege(%s, current_database(), 'CONNECT'),"
            "       has_database_privilege(%s, 'postgres', 'CONNECT'),"
            "       has_database_privilege(%s, 'template1', 'CONNECT'),"
            "       has_database_privilege(%s, %s, 'CONNECT'),"
            "       (SELECT rolconnlimit FROM pg_roles WHERE rolname = %s),"
            "       (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s)",
            [name, name, name, name, name, name, name],
        ).fetchone()
    assert row == (False, False, False, True, 20, name)

    # Supervisor: a killed server is restarted by the periodic resync.
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    ws = plane.wait_for(ws_id, lambda w: w.outputs.get("pid") not in (None, pid), timeout=30)
    print(f"restarted in {time.monotonic() - killed:.1f}s")
    assert _ping(ws.outputs["port"]) == 200
    assert server_pids(runtime_dir) == [ws.outputs["pid"]]
    assert ws.outputs["created"]["server"] == 2 and ws.outputs["created"]["database"] == 1
    pid = ws.outputs["pid"]

    # Hibernation stops the server and keeps the data; waking brings the same workspace back.
    plane.set_state(ws_id, Lifecycle.hibernated)
    defer_reconcile(ws_id)
    ws = plane.wait_for(ws_id, lambda w: _condition(w, "ComputeReady") == ("False", "Hibernated"))
    assert not pid_alive(pid) and server_pids(runtime_dir) == []
    assert "port" not in ws.outputs and plane.database_exists(name)
    assert (plane.state_dir / "workspaces" / str(ws_id) / "files").is_dir()
    plane.set_state(ws_id, Lifecycle.active)
    defer_reconcile(ws_id)
    ws = plane.wait_for(ws_id, lambda w: _condition(w, "Available") == ("True", "Ready") and "port" in w.outputs)
    assert _login(ws.outputs["port"], PASSWORD).status_code == 200, "the admin made before hibernation remains"
    pid = ws.outputs["pid"]
    assert server_pids(runtime_dir) == [pid]

    # Deletion tears everything down and marks the row deleted.
    plane.set_state(ws_id, Lifecycle.pending_deletion)
    defer_reconcile(ws_id)
    ws = plane.wait_state(ws_id, Lifecycle.deleted)
    assert ws.deleted_at is not None and ws.endpoint_url is None
    assert all(c["status"] == "False" for c in ws.conditions)
    assert not pid_alive(pid)
    assert server_pids(runtime_dir) == []
    assert not plane.database_exists(name)
    assert not plane.role_exists(name)
    assert not (plane.state_dir / "workspaces" / str(ws_id)).exists()
