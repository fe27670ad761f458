"""Staff accounts and workspaces pending deletion for the operations page tests, made through product paths."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import httpx

from tests.waiting import wait_until
from tests.web.conftest import Server
from tests.web.pages import PASSWORD, Page, new_client, sign_up_and_verify

TIMEOUT = 120.0


def staff_account(server: Server, role: str) -> str:
    """A staff account made with ``canopy create-account`` on the server's database; returns its email."""
    email = f"{role}-{uuid.uuid4().hex[:6]}@canopy.example"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CANOPY_")}
    environment.update({"CANOPY_DATABASE_URL": server.db_url, "CANOPY_DEV_MODE": "true"})
    command = [sys.executable, "-m", "control_plane.cli", "create-account", "--email", email, "--role", role]
    subprocess.run([*command, "--password", PASSWORD], env=environment, check=True, capture_output=True, timeout=60)
    return email


def pending_deletion(server: Server, slug: str) -> tuple[httpx.Client, str]:
    """A new workspace, once it serves, deleted by its owner from the workspaces page; the owner's signed-in
    client and the workspace id (once the reconciler has stopped it and taken its final backup)."""
    owner = new_client(server.loopback)
    progress = sign_up_and_verify(owner, f"owner@{slug}.example.com", slug)
    workspace_id = progress.split("/")[-2]
    wait_until(
        f"{slug} ready",
        lambda: bool(owner.get(f"/signup/workspaces/{workspace_id}/status").json()["ready"]),
        timeout=TIMEOUT,
    )
    token = Page(owner.get("/workspaces").text).value("csrf_token")
    deleted = owner.post(
        f"/workspaces/{workspace_id}/delete", data={"csrf_token": token, "confirm_address": f"{slug}.localhost"}
    )
    assert deleted.status_code == 303, deleted.text
    wait_until(f"the final backup of {slug}", lambda: final_backup(server, workspace_id) == "completed", TIMEOUT)
    return owner, workspace_id


def final_backup(server: Server, workspace_id: str) -> str | None:
    """The state of the workspace's newest final backup."""
    rows = server.query(
        "SELECT state::text FROM workspace_backups WHERE workspace_id = %s AND kind = 'final'"
        " ORDER BY created_at DESC LIMIT 1",
        uuid.UUID(workspace_id),
    )
    return str(rows[0][0]) if rows else None


def lifecycle(server: Server, workspace_id: str) -> tuple[str, bool]:
    """The workspace's lifecycle state, and whether the reconciler has acted on its latest change."""
    [(state, reconciled)] = server.query(
        "SELECT lifecycle_state::text, observed_generation >= generation FROM workspaces WHERE id = %s",
        uuid.UUID(workspace_id),
    )
    return str(state), bool(reconciled)
