"""Bad input answers a 4xx problem and writes nothing: races, NUL bytes, unknown references, overflows."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from control_plane.accounts.models import Account
from control_plane.audit.models import AuditEntry
from control_plane.core.db import session_scope
from control_plane.core.models import IdempotencyRecord
from control_plane.organizations.models import Organization
from control_plane.tokens.models import ApiToken
from control_plane.workspaces.models import Workspace
from tests.control_plane.conftest import PASSWORD, Owner, staff_token

PROBLEM = "application/problem+json"
PARALLEL = 10


def row_counts() -> dict[str, int]:
    """How many rows the tables a create writes hold."""
    with session_scope() as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Account, Organization, Workspace, ApiToken, AuditEntry, IdempotencyRecord)
        }


def assert_problem(response: httpx.Response, *statuses: int) -> None:
    """``response`` is a problem document with one of ``statuses``."""
    assert response.status_code in statuses, (response.status_code, response.text)
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["status"] == response.status_code


def in_parallel(send: Callable[[], httpx.Response]) -> list[httpx.Response]:
    """``PARALLEL`` identical requests released at once."""
    barrier = threading.Barrier(PARALLEL)

    def go() -> httpx.Response:
        barrier.wait(timeout=30)
        return send()

    with ThreadPoolExecutor(PARALLEL) as pool:
        return list(pool.map(lambda _: go(), range(PARALLEL)))


@pytest.mark.parametrize("key", [None, "race-ws-key"])
def test_parallel_identical_workspace_creates_make_one(
    client: TestClient, sign_up: Callable[[str], Owner], key: str | None
) -> None:
    owner = sign_up(f"racer-{bool(key):d}")
    slug = f"raced-ws-{bool(key):d}"
    headers = owner.headers | ({"Idempotency-Key": key} if key else {})
    answers = in_parallel(lambda: client.post("/api/v1/workspaces", json={"slug": slug}, headers=headers))
    statuses = sorted(r.status_code for r in answers)
    assert set(statuses) <= {201, 409}, [r.text for r in answers]
    created = {r.json()["id"] for r in answers if r.status_code == 201}
    assert len(created) == 1
    for loser in (r for r in answers if r.status_code == 409):
        assert_problem(loser, 409)
    if key:  # same key, same body: everyone gets the winner's answer
        assert statuses == [201] * PARALLEL
    with session_scope() as session:
        assert session.scalar(select(func.count()).where(Workspace.slug == slug)) == 1


@pytest.mark.parametrize("key", [None, "race-signup-key"])
def test_parallel_identical_signups_make_one(client: TestClient, key: str | None) -> None:
    body = {
        "email": f"race-{bool(key):d}@example.com",
        "workspace": f"raced-signup-{bool(key):d}",
        "password": PASSWORD,
    }
    headers = {"Idempotency-Key": key} if key else {}
    answers = in_parallel(lambda: client.post("/api/v1/signup", json=body, headers=headers))
    statuses = sorted(r.status_code for r in answers)
    assert set(statuses) <= {202, 409}, [r.text for r in answers]
    accepted = {json.dumps(r.json(), sort_keys=True) for r in answers if r.status_code == 202}
    assert len(accepted) == 1, accepted  # every 202 is the same answer
    answer = json.loads(accepted.pop())
    assert (answer["email"], answer["workspace"]) == (body["email"], body["workspace"])
    for loser in (r for r in answers if r.status_code == 409):
        assert_problem(loser, 409)
    if key:
        assert statuses == [202] * PARALLEL
    with session_scope() as session:
        assert session.scalar(select(func.count()).where(Account.email == body["email"])) == 1
        assert session.scalar(select(func.count()).where(Workspace.slug == body["workspace"])) == 1


def test_nul_bytes_and_lone_surrogates_are_422_and_write_nothing(
    client: TestClient, sign_up: Callable[[str], Owner]
) -> None:
    owner = sign_up("nul-owner")
    admin = {"Authorization": f"Bearer {staff_token('nul-admin@canopy.example', 'admin')}"}
    before = row_counts()
    signup = {"workspace": "nul-signup", "password": PASSWORD}
    bodies: list[tuple[str, dict[str, Any], dict[str, str]]] = [
        ("/api/v1/tokens", {"name": "ci\x00"}, owner.headers),
        ("/api/v1/organizations", {"name": "Acme\x00", "owner_email": "nul-org@example.com"}, admin),
        ("/api/v1/workspaces", {"slug": "nul-ws", "display_name": "Nul\x00"}, owner.headers),
        ("/api/v1/signup", signup | {"email": "nul@example.com", "display_name": "\x00"}, {}),
        ("/api/v1/signup", signup | {"email": "n\x00ul@example.com"}, {}),
        ("/api/v1/signup", signup | {"email": "nul3@example.com", "password": PASSWORD + "\x00"}, {}),
    ]  # fmt: skip
    for path, body, headers in bodies:
        assert_problem(client.post(path, json=body, headers=headers), 422)
    surrogate = b'{"name": "ci\\ud800"}'
    sent = client.post(
        "/api/v1/tokens", content=surrogate, headers=owner.headers | {"Content-Type": "application/json"}
    )
    assert_problem(sent, 422)
    for path, params in [
        ("/api/v1/audit", {"target_id": "x\x00"}),
        ("/api/v1/workspaces", {"cursor": "\x00"}),
        ("/api/v1/workspace-slugs/a%00b/availability", {}),
        ("/api/v1/cells/a%00b", {}),
    ]:
        assert_problem(client.get(path, params=params, headers=admin), 422)
    assert row_counts() == before


def test_staff_create_in_unknown_organization_is_422(client: TestClient) -> None:
    sales = {"Authorization": f"Bearer {staff_token('fk-sales@canopy.example', 'sales')}"}
    before = row_counts()
    body = {"slug": "orphan", "organization_id": str(uuid.uuid4())}
    r = client.post("/api/v1/workspaces", json=body, headers=sales)
    assert_problem(r, 422)
    assert {"field": "organization_id"}.items() <= r.json()["errors"][0].items()
    assert row_counts() == before


@pytest.mark.parametrize("before_id", [2**63, -(2**63) - 1, 10**30])
def test_audit_before_id_beyond_bigint_is_422(client: TestClient, before_id: int) -> None:
    admin = {"Authorization": f"Bearer {staff_token(f'audit{before_id % 97}@canopy.example', 'admin')}"}
    assert_problem(client.get("/api/v1/audit", params={"before_id": before_id}, headers=admin), 422)
    assert client.get("/api/v1/audit", params={"before_id": 2**63 - 1}, headers=admin).status_code == 200


def test_signup_idempotency_keeps_no_password_digest_and_scopes_keys_per_email(client: TestClient) -> None:
    body = {"email": "scoped@example.com", "workspace": "scoped-one", "password": PASSWORD}
    key = {"Idempotency-Key": "shared-client-key"}
    assert client.post("/api/v1/signup", json=body, headers=key).status_code == 202
    # Another person picking the same key gets their own signup, not a clash with the first.
    other = {"email": "scoped-two@example.com", "workspace": "scoped-two", "password": PASSWORD}
    r = client.post("/api/v1/signup", json=other, headers=key)
    assert r.status_code == 202, r.text
    assert r.json()["workspace"] == "scoped-two"
    # The same key with another password is not the same request (and is not answered with the first's result).
    r = client.post("/api/v1/signup", json=body | {"password": PASSWORD + "!"}, headers=key)
    assert_problem(r, 422)
    as_parsed = {"display_name": None} | body  # what the old code digested, password included
    full = json.dumps(as_parsed, sort_keys=True, default=str).encode()
    with session_scope() as session:
        records = session.scalars(select(IdempotencyRecord)).all()
        stored = " ".join(f"{r.scope} {r.key} {r.request_digest} {json.dumps(r.response_body)}" for r in records)
    assert PASSWORD not in stored
    assert hashlib.sha256(full).hexdigest() not in stored


def test_create_account_cli_prints_a_working_token(client: TestClient, cp_database: str) -> None:
    env = os.environ | {"CANOPY_DATABASE_URL": cp_database, "PYTHONPATH": os.getcwd()}
    command = [sys.executable, "-m", "control_plane.cli", "create-account", "--email", "x@y.com", "--role", "admin"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip().splitlines()[-1]
    assert token.startswith("cnp_")
    assert client.get("/api/v1/audit", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode != 0 and "already exists" in again.stderr
    assert "Traceback" not in again.stderr


def test_a_body_past_a_mebibyte_is_a_413_problem_declared_or_streamed(client: TestClient) -> None:
    before = row_counts()
    huge = b'{"email": "big@example.com", "password": "' + b"x" * 2**20 + b'"}'
    declared = client.post("/api/v1/signup", content=huge, headers={"Content-Type": "application/json"})
    streamed = client.post(
        "/api/v1/signup", content=iter([huge[:1000], huge[1000:]]), headers={"Content-Type": "application/json"}
    )
    for response in (declared, streamed):
        assert_problem(response, 413)
        assert response.json()["type"].endswith("/payload-too-large")
    assert row_counts() == before
