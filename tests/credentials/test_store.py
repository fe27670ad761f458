"""Each workspace's control token and database password are random, unrelated to any other's, stored encrypted;
what the former derivation from ``CANOPY_SECRET_KEY`` gives opens neither the workspace server's control
endpoints nor its database (issue 10: anyone knowing a workspace id could make a system admin)."""

from __future__ import annotations

import hashlib
import hmac
import os
import uuid

import httpx
import pytest
from psycopg import sql

from control_plane.core.db import session_scope
from control_plane.core.settings import DEFAULT_SECRET_KEY
from control_plane.credentials import service as credentials
from control_plane.credentials.models import Purpose
from control_plane.reconciler.queue import Cause, defer_reconcile
from control_plane.workspaces.lifecycle import Lifecycle
from tests.credentials.scram import password_matches, role_verifier
from tests.reconciler.conftest import Plane, password_hash

pytestmark = pytest.mark.slow

FORMER_PURPOSES = ("workspace-db", "workspace-control")


def derived(key: str, purpose: str, workspace_id: uuid.UUID) -> str:
    """What ``derive_secret`` gave before credentials were stored: HMAC-SHA256(key, "<purpose>:<id>")."""
    return hmac.new(key.encode(), f"{purpose}:{workspace_id}".encode(), hashlib.sha256).hexdigest()


def stored(workspace_id: uuid.UUID, purpose: Purpose) -> str:
    with session_scope() as session:
        secret = credentials.reveal(session, workspace_id, purpose)
    assert secret is not None
    return secret


@pytest.fixture(scope="module")
def provisioned(plane: Plane) -> list[uuid.UUID]:
    """Two workspaces provisioned by a worker."""
    ids = [plane.create_workspace(f"cred{uuid.uuid4().hex[:8]}") for _ in range(2)]
    plane.start_worker()
    for ws_id in ids:
        defer_reconcile(ws_id, Cause.signup)
    for ws_id in ids:
        plane.wait_state(ws_id, Lifecycle.trialing, timeout=120)
    return ids


def test_credentials_are_random_per_workspace_and_stored_encrypted(plane: Plane, provisioned: list[uuid.UUID]) -> None:
    secrets = [stored(ws_id, purpose) for ws_id in provisioned for purpose in Purpose]
    assert len(set(secrets)) == 4 and all(len(s) >= 43 for s in secrets)
    keys = (DEFAULT_SECRET_KEY, os.environ["CANOPY_SECRET_KEY"])
    formerly = {derived(k, p, ws_id) for k in keys for p in FORMER_PURPOSES for ws_id in provisioned}
    assert not formerly & set(secrets)
    with plane.admin() as conn:
        rows = conn.execute(
            "SELECT workspace_id, purpose, ciphertext FROM workspace_credentials WHERE workspace_id = ANY(%s)",
            [provisioned],
        ).fetchall()
    assert {(ws_id, purpose) for ws_id, purpose, _ in rows} == {(w, p.value) for w in provisioned for p in Purpose}
    for ws_id, purpose, ciphertext in rows:
        plaintext = stored(ws_id, Purpose(purpose)).encode()
        assert plaintext not in bytes(ciphertext)


def test_the_derived_control_token_opens_nothing(plane: Plane, provisioned: list[uuid.UUID]) -> None:
    attacker = {"email": "mallory@example.com", "username": "mallory", "password_hash": password_hash()}
    for ws_id in provisioned:
        base = f"http://127.0.0.1:{plane.row(ws_id).outputs['port']}/api/v4/canopy"
        for key in (DEFAULT_SECRET_KEY, os.environ["CANOPY_SECRET_KEY"]):
            token = derived(key, "workspace-control", ws_id)
            put = httpx.put(f"{base}/initial_admin", json=attacker, headers={"Authorization": f"Bearer {token}"})
            assert put.status_code == 401, put.text
        usage = httpx.get(f"{base}/usage", headers={"Authorization": f"Bearer {stored(ws_id, Purpose.control)}"})
        assert usage.status_code == 200 and usage.json()["activated_users"] == 1, "only the signup's admin exists"


def test_the_database_takes_the_stored_password_and_not_the_derived_one(
    plane: Plane, provisioned: list[uuid.UUID]
) -> None:
    for ws_id in provisioned:
        with plane.admin() as conn:
            verifier = role_verifier(conn, f"ws_{ws_id.hex[:12]}")
        assert password_matches(verifier, stored(ws_id, Purpose.database))
        for key in (DEFAULT_SECRET_KEY, os.environ["CANOPY_SECRET_KEY"]):
            assert not password_matches(verifier, derived(key, "workspace-db", ws_id))


def test_a_role_with_another_password_gets_the_stored_one_back(plane: Plane, provisioned: list[uuid.UUID]) -> None:
    """A workspace provisioned before credentials were stored has its derived password: the next reconcile sets
    the stored one (and the server it restarts uses it)."""
    ws_id = provisioned[0]
    role = f"ws_{ws_id.hex[:12]}"
    formerly = derived(os.environ["CANOPY_SECRET_KEY"], "workspace-db", ws_id)
    with plane.admin() as conn:
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(formerly)))
        conn.execute(sql.SQL("COMMENT ON ROLE {} IS NULL").format(sql.Identifier(role)))
    defer_reconcile(ws_id, Cause.signup)
    with plane.admin() as conn:
        plane.wait_for(
            ws_id, lambda _: password_matches(role_verifier(conn, role), stored(ws_id, Purpose.database)), timeout=60
        )
        assert not password_matches(role_verifier(conn, role), formerly)
