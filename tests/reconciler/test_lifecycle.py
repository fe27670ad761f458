"""One worker provisions a workspace end to end, supervises its server, hibernates, wakes and deletes it; every
state change goes through the API (or the CLI) and the lifecycle table."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

import httpx
import pytest

from control_plane.core.authz import Role
from control_plane.reconciler.queue import Cause, defer_reconcile
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Workspace
from tests.reconciler.conftest import PASSWORD, ROOT, Plane, pid_alive, server_pids

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


def _serving_latest(ws: Workspace) -> bool:
    """The reconciler converged the current generation and the server is up."""
    return ws.observed_generation == ws.generation and _condition(ws, "Available") == ("True", "Ready")


def _act(plane: Plane, ws_id: uuid.UUID, verb: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """``POST /api/v1/workspaces/{id}/{verb}`` as the workspace's owner (or ``headers``)."""
    return plane.api.post(f"/api/v1/workspaces/{ws_id}/{verb}", headers=headers or plane.owner_headers[ws_id])


def _cli(plane: Plane, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "control_plane.cli", *args],
        env=plane.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _audit(plane: Plane, ws_id: uuid.UUID) -> list[dict[str, Any]]:
    r = plane.api.get("/api/v1/audit", params={"target_id": str(ws_id)}, headers=plane.owner_headers[ws_id])
    assert r.status_code == 200, r.text
    return list(reversed(r.json()["items"]))


def test_provision_supervise_hibernate_and_delete(plane: Plane) -> None:
    ws_id = plane.create_workspace("acme", email=EMAIL)
    name = f"ws_{ws_id.hex[:12]}"
    runtime_dir = plane.runtime_dir(ws_id)
    plane.start_worker()
    started = time.monotonic()
    defer_reconcile(ws_id, Cause.signup)

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

    # Supervisor: a killed server is found by the drift check (the local runtime's probe) and started again.
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    ws = plane.wait_for(ws_id, lambda w: w.outputs.get("pid") not in (None, pid), timeout=30)
    print(f"restarted in {time.monotonic() - killed:.1f}s")
    assert _ping(ws.outputs["port"]) == 200
    assert server_pids(runtime_dir) == [ws.outputs["pid"]]
    assert ws.outputs["created"]["server"] == 2 and ws.outputs["created"]["database"] == 1
    pid = ws.outputs["pid"]

    # Hibernation (by the owner, through the API) stops the server and keeps the data.
    trial_ends_at = ws.trial_ends_at
    r = _act(plane, ws_id, "hibernate")
    assert r.status_code == 202 and r.json()["lifecycle_state"] == "hibernated", r.text
    ws = plane.wait_for(ws_id, lambda w: _condition(w, "ComputeReady") == ("False", "Hibernated"))
    assert not pid_alive(pid) and server_pids(runtime_dir) == []
    assert "port" not in ws.outputs and plane.database_exists(name)
    assert (plane.state_dir / "workspaces" / str(ws_id) / "files").is_dir()
    assert ws.resume_state == Lifecycle.trialing
    assert _act(plane, ws_id, "hibernate").json()["type"].endswith("/illegal-transition")

    # Waking brings the same workspace back as it was: a trial stays a trial, with the same end.
    r = _act(plane, ws_id, "wake")
    assert r.status_code == 202 and r.json()["lifecycle_state"] == "trialing", r.text
    ws = plane.wait_for(ws_id, _serving_latest)
    assert ws.lifecycle_state == Lifecycle.trialing and ws.trial_ends_at == trial_ends_at and ws.resume_state is None
    assert _login(ws.outputs["port"], PASSWORD).status_code == 200, "the admin made before hibernation remains"
    pid = ws.outputs["pid"]
    assert server_pids(runtime_dir) == [pid]
    wake_again = _act(plane, ws_id, "wake")
    assert wake_again.status_code == 409 and wake_again.json()["current_state"] == "trialing", wake_again.text

    # The operator's console verbs take the same path.
    hibernated = _cli(plane, "workspaces", "hibernate", str(ws_id))
    assert hibernated.returncode == 0 and hibernated.stdout.strip() == "hibernated", hibernated.stderr
    woken = _cli(plane, "workspaces", "wake", str(ws_id))
    assert woken.returncode == 0 and woken.stdout.strip() == "trialing", woken.stderr
    refused = _cli(plane, "workspaces", "wake", str(ws_id))
    assert refused.returncode == 1 and "Only a hibernated workspace can be woken" in refused.stderr
    ws = plane.wait_for(ws_id, _serving_latest)
    pid = ws.outputs["pid"]
    assert server_pids(runtime_dir) == [pid]
    changes = [(e["action"], e["after"]["lifecycle_state"], e["after"]["resume_state"]) for e in _audit(plane, ws_id)]
    assert changes[-4:] == [
        ("workspace.hibernated", "hibernated", "trialing"),
        ("workspace.wake", "trialing", None),
        ("workspace.hibernated", "hibernated", "trialing"),
        ("workspace.wake", "trialing", None),
    ], changes

    # Deletion (through the API, of a hibernated workspace: cancelling would start it again in the state hibernation
    # paused) is scheduled; an operator's purge tears everything down and marks the row deleted.
    assert _act(plane, ws_id, "hibernate").status_code == 202
    r = plane.api.delete(f"/api/v1/workspaces/{ws_id}", headers=plane.owner_headers[ws_id])
    assert r.status_code == 202 and r.json()["lifecycle_state"] == "pending_deletion", r.text
    assert plane.row(ws_id).resume_state == Lifecycle.trialing
    r = plane.as_operator("POST", f"/api/v1/workspaces/{ws_id}/purge", json={"reason": "lifecycle test"})
    assert r.status_code == 202, r.text
    ws = plane.wait_state(ws_id, Lifecycle.deleted)
    assert ws.deleted_at is not None and ws.endpoint_url is None
    assert all(c["status"] == "False" for c in ws.conditions)
    assert not pid_alive(pid)
    assert server_pids(runtime_dir) == []
    assert not plane.database_exists(name)
    assert not plane.role_exists(name)
    assert not (plane.state_dir / "workspaces" / str(ws_id)).exists()


@pytest.mark.parametrize("verb", ["hibernate", "wake"])
def test_hibernate_and_wake_are_for_the_owner_operators_and_admins(plane: Plane, verb: str) -> None:
    ws_id = plane.create_workspace(f"perm-{verb}")  # stays provisioning: no worker runs in this test
    stranger = plane.owner_headers[plane.create_workspace(f"other-{verb}")]
    ws = plane.row(ws_id)

    assert _act(plane, ws_id, verb, stranger).status_code == 404, "another organization's owner learns nothing"
    refused = [plane.member_headers(ws_id, Role.billing), *(plane.staff_headers(r) for r in (Role.sales, Role.support))]
    for headers in refused:
        r = _act(plane, ws_id, verb, headers)
        assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json", r.text
    allowed = [plane.owner_headers[ws_id], plane.staff_headers(Role.operator), plane.staff_headers(Role.admin)]
    for headers in allowed:  # allowed to ask; a provisioning workspace can neither hibernate nor wake
        r = _act(plane, ws_id, verb, headers)
        assert r.status_code == 409 and r.json()["type"].endswith("/illegal-transition"), r.text
        assert r.json()["current_state"] == "provisioning"
    after = plane.row(ws_id)
    assert (after.lifecycle_state, after.generation) == (Lifecycle.provisioning, ws.generation), "nothing written"
