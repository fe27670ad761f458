"""The runbook's key rotation, command by command (runbooks/rotate-credential-keys.md): a new key, every
credential re-encrypted by ``canopy rotate-credential-keys`` (idempotent, audited without secrets), then the
workspace still works with only the new key, and the old key alone opens nothing."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import uuid
from typing import Any

import httpx
import pytest

from control_plane.credentials.keys import Keyring, UndecryptableCredential, key_id
from control_plane.credentials.models import Purpose
from control_plane.reconciler.queue import Cause, defer_reconcile
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Workspace
from tests.reconciler.conftest import ROOT, Plane

pytestmark = pytest.mark.slow

RUNBOOK = ROOT / "runbooks" / "rotate-credential-keys.md"


def runbook_commands() -> list[str]:
    """The shell commands of the runbook's code blocks."""
    blocks = re.findall(r"```sh\n(.*?)```", RUNBOOK.read_text(), flags=re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def run(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A runbook command: ``python`` is this interpreter, ``canopy`` the control plane's CLI."""
    program, *args = shlex.split(command)
    argv = {"python": [sys.executable], "canopy": [sys.executable, "-m", "control_plane.cli"]}[program] + args
    return subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)


def ciphertexts(plane: Plane, workspace_id: uuid.UUID) -> dict[Purpose, bytes]:
    with plane.admin() as conn:
        rows = conn.execute(
            "SELECT purpose, ciphertext FROM workspace_credentials WHERE workspace_id = %s", [workspace_id]
        ).fetchall()
    return {Purpose(purpose): bytes(ciphertext) for purpose, ciphertext in rows}


def audit_rows(plane: Plane) -> list[tuple[Any, ...]]:
    with plane.admin() as conn:
        query = "SELECT actor, target_id, after::text FROM audit_entries WHERE action = 'credential_keys.rotated'"
        return conn.execute(query).fetchall()


def test_rotation_by_the_runbook(plane: Plane) -> None:
    make_key, rotate = runbook_commands()
    ws_id = plane.create_workspace(f"rot{uuid.uuid4().hex[:8]}")
    plane.start_worker()
    defer_reconcile(ws_id, Cause.signup)
    plane.wait_state(ws_id, Lifecycle.trialing, timeout=120)
    old_key = json.loads(plane.env["CANOPY_CREDENTIAL_KEYS"])[0]
    secrets = {p: Keyring((old_key,)).decrypt(c) for p, c in ciphertexts(plane, ws_id).items()}
    plane.stop_workers()

    # 1. a new key
    made = run(make_key, plane.env)
    assert made.returncode == 0, made.stderr
    new_key = made.stdout.strip()

    # 2-3. both keys, newest first; re-encrypt (twice: the second run has nothing to do)
    both = plane.env | {"CANOPY_CREDENTIAL_KEYS": json.dumps([new_key, old_key])}
    first, again = run(rotate, both), run(rotate, both)
    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    new_id = key_id(new_key)
    assert first.stdout == f"re-encrypted 2 credential(s) under key {new_id}; by key id: {new_id}: 2\n"
    assert again.stdout == f"re-encrypted 0 credential(s) under key {new_id}; by key id: {new_id}: 2\n"
    audited = audit_rows(plane)
    assert len(audited) == 2 and all(row[:2] == ("cli", new_id) for row in audited)
    assert not any(secret in str(audited) or new_key in str(audited) for secret in [*secrets.values(), old_key])

    # The old key alone opens nothing now.
    for ciphertext in ciphertexts(plane, ws_id).values():
        with pytest.raises(UndecryptableCredential):
            Keyring((old_key,)).decrypt(ciphertext)
    only_old = run(rotate, plane.env | {"CANOPY_CREDENTIAL_KEYS": json.dumps([old_key])})
    assert only_old.returncode == 1 and "CANOPY_CREDENTIAL_KEYS" in only_old.stderr

    # 4. only the new key: a worker restarts the killed server with the same credentials, and they work.
    only_new = json.dumps([new_key])
    assert {p: Keyring((new_key,)).decrypt(c) for p, c in ciphertexts(plane, ws_id).items()} == secrets
    old_pid = plane.row(ws_id).outputs["pid"]
    os.kill(old_pid, signal.SIGKILL)
    plane.start_worker(CANOPY_CREDENTIAL_KEYS=only_new)

    def restarted(ws: Workspace) -> bool:
        return ws.outputs.get("pid") not in (None, old_pid) and ws.last_error is None

    ws = plane.wait_for(ws_id, restarted, timeout=90)
    usage = httpx.get(
        f"http://127.0.0.1:{ws.outputs['port']}/api/v4/canopy/usage",
        headers={"Authorization": f"Bearer {secrets[Purpose.control]}"},
    )
    assert usage.status_code == 200 and usage.json()["activated_users"] == 1, usage.text
