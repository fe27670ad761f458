"""The control-plane REST API: signup, workspaces, tokens, audit, errors and authorization."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select

from control_plane.cli import main as cli_main
from control_plane.core.db import session_scope
from control_plane.workspaces.models import Workspace
from tests.control_plane.conftest import PASSWORD, Owner, verification_token

PROBLEM = "application/problem+json"


def test_signup_verify_starts_provisioning(client: TestClient, sign_up: Callable[[str], Owner]) -> None:
    owner = sign_up("alpha")
    r = client.get("/api/v1/workspaces", headers=owner.headers)
    assert r.status_code == 200
    [ws] = r.json()["items"]
    assert ws["slug"] == "alpha"
    assert ws["tier"] == "professional"
    assert ws["lifecycle_state"] == "provisioning"
    assert set(ws["reconcile"]) >= {"attempts", "last_error", "next_attempt_at"}
    with session_scope() as session:
        row = session.get(Workspace, uuid.UUID(ws["id"]))
        assert row is not None and row.initial_admin_email == owner.email
        assert row.initial_admin_password_hash and row.initial_admin_password_hash.startswith("$argon2id$")


def test_verification_link_is_single_purpose(client: TestClient) -> None:
    email = "twice@example.com"
    client.post("/api/v1/signup", json={"email": email, "workspace": "twice", "password": PASSWORD})
    token = verification_token(email)
    first = client.post("/api/v1/signup/verify", json={"token": token})
    second = client.post("/api/v1/signup/verify", json={"token": token})
    assert [ws["slug"] for ws in first.json()["workspaces"]] == ["twice"]
    assert second.status_code == 200 and second.json()["workspaces"] == []
    bad = client.post("/api/v1/signup/verify", json={"token": "verify_not-a-real-token"})
    assert bad.status_code == 400 and bad.headers["content-type"] == PROBLEM


def test_unverified_account_cannot_get_a_token(client: TestClient) -> None:
    client.post("/api/v1/signup", json={"email": "late@example.com", "workspace": "late", "password": PASSWORD})
    r = client.post("/api/v1/auth/token", json={"email": "late@example.com", "password": PASSWORD})
    assert r.status_code == 401 and r.headers["content-type"] == PROBLEM


def test_signup_errors_are_problems_naming_fields(client: TestClient) -> None:
    cases = [
        ({"email": "not-an-email", "workspace": "okname", "password": PASSWORD}, 422, "email"),
        ({"email": "a@example.com", "workspace": "www", "password": PASSWORD}, 422, "workspace"),
        ({"email": "a@example.com", "workspace": "-bad-", "password": PASSWORD}, 422, "workspace"),
        ({"email": "a@example.com", "workspace": "okname", "password": "short"}, 422, "password"),
    ]
    for body, status, field in cases:
        r = client.post("/api/v1/signup", json=body)
        assert r.status_code == status, (body, r.text)
        assert r.headers["content-type"] == PROBLEM
        problem = r.json()
        assert problem["status"] == status and problem["type"].startswith("https://")
        assert field in {e["field"] for e in problem.get("errors", [])} | {problem.get("field")}
    with session_scope() as session:
        assert session.scalars(select(Workspace).where(Workspace.slug == "okname")).first() is None


def test_slug_rules_and_availability(client: TestClient, sign_up: Callable[[str], Owner]) -> None:
    sign_up("taken-one")
    expectations = {
        "Taken-One": (False, "is already taken"),
        "api": (False, "is reserved"),
        "ab": (False, "must be 3 to 63 characters long"),
        "under_score": (False, None),
        "FreshName": (True, None),
    }
    for slug, (available, reason) in expectations.items():
        body = client.get(f"/api/v1/workspace-slugs/{slug}/availability").json()
        assert body["available"] is available, (slug, body)
        assert body["slug"] == slug.casefold()
        if reason:
            assert body["reason"] == reason
    r = client.post("/api/v1/signup", json={"email": "dup@example.com", "workspace": "TAKEN-ONE", "password": PASSWORD})
    assert r.status_code == 409 and r.json()["type"].endswith("/slug-taken")


def test_idempotency_key_replays_and_rejects_other_bodies(client: TestClient) -> None:
    body = {"email": "idem@example.com", "workspace": "idem", "password": PASSWORD}
    headers = {"Idempotency-Key": "signup-idem-1"}
    first = client.post("/api/v1/signup", json=body, headers=headers)
    again = client.post("/api/v1/signup", json=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    other = client.post("/api/v1/signup", json={**body, "workspace": "idem-two"}, headers=headers)
    assert other.status_code == 422 and other.json()["type"].endswith("/idempotency-key-reused")
    with session_scope() as session:
        assert len(session.scalars(select(Workspace).where(Workspace.slug.like("idem%"))).all()) == 1


def test_another_organizations_workspace_is_404(client: TestClient, sign_up: Callable[[str], Owner]) -> None:
    mine, theirs = sign_up("mine"), sign_up("theirs")
    their_ws = client.get("/api/v1/workspaces", headers=theirs.headers).json()["items"][0]
    r = client.get(f"/api/v1/workspaces/{their_ws['id']}", headers=mine.headers)
    assert r.status_code == 404 and r.headers["content-type"] == PROBLEM
    r = client.delete(f"/api/v1/workspaces/{their_ws['id']}", headers=mine.headers)
    assert r.status_code == 404
    listed = client.get("/api/v1/workspaces", params={"organization_id": theirs.organization_id}, headers=mine.headers)
    assert listed.json()["items"] == []
    assert client.get(f"/api/v1/organizations/{theirs.organization_id}", headers=mine.headers).status_code == 404


def test_requests_without_valid_token_are_401(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer cnp_nope"}, {"Authorization": "Basic abc"}):
        r = client.get("/api/v1/workspaces", headers=headers)
        assert r.status_code == 401 and r.headers["content-type"] == PROBLEM


def test_delete_then_illegal_transition_is_409(client: TestClient, sign_up: Callable[[str], Owner]) -> None:
    owner = sign_up("doomed")
    ws = client.get("/api/v1/workspaces", headers=owner.headers).json()["items"][0]
    r = client.delete(f"/api/v1/workspaces/{ws['id']}", headers=owner.headers)
    assert r.status_code == 202 and r.json()["lifecycle_state"] == "pending_deletion"
    r = client.delete(f"/api/v1/workspaces/{ws['id']}", headers=owner.headers)
    assert r.status_code == 409
    problem = r.json()
    assert problem["current_state"] == "pending_deletion"
    assert problem["requested_state"] == "pending_deletion"
    assert "pending_deletion" in problem["detail"]


def test_staff_lists_with_cursor_pagination_and_filters(
    client: TestClient, sign_up: Callable[[str], Owner], capsys: object
) -> None:
    for i in range(5):
        sign_up(f"page-{i}")
    assert cli_main(["create-account", "--email", "ops@canopy.example", "--role", "operator"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]  # type: ignore[attr-defined]
    headers = {"Authorization": f"Bearer {token}"}
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, "state": "provisioning"} | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/v1/workspaces", params=params, headers=headers).json()
        seen += [ws["slug"] for ws in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert [s for s in seen if s.startswith("page-")] == [f"page-{i}" for i in range(5)]
    assert len(seen) == len(set(seen))
    assert client.get("/api/v1/workspaces", params={"cursor": "garbage!"}, headers=headers).status_code == 422
    # Operators may not create organizations (sales and admins do).
    r = client.post("/api/v1/organizations", json={"name": "X", "owner_email": "x@example.com"}, headers=headers)
    assert r.status_code == 403


def test_tokens_are_shown_once_and_revocable(client: TestClient, sign_up: Callable[[str], Owner]) -> None:
    owner = sign_up("tokens")
    created = client.post("/api/v1/tokens", json={"name": "ci"}, headers=owner.headers)
    assert created.status_code == 201
    secret = created.json()["token"]
    listed = client.get("/api/v1/tokens", headers=owner.headers).json()
    assert all("token" not in t for t in listed) and secret not in str(listed)
    mine = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/v1/workspaces", headers=mine).status_code == 200
    assert client.delete(f"/api/v1/tokens/{created.json()['id']}", headers=owner.headers).status_code == 200
    assert client.get("/api/v1/workspaces", headers=mine).status_code == 401
    escalate = client.post("/api/v1/tokens", json={"name": "x", "role": "admin"}, headers=owner.headers)
    assert escalate.status_code == 403


def test_mutations_are_audited_with_request_id(client: TestClient, sign_up: Callable[[str], Owner]) -> None:
    owner = sign_up("audited")
    ws = client.get("/api/v1/workspaces", headers=owner.headers).json()["items"][0]
    client.delete(f"/api/v1/workspaces/{ws['id']}", headers={**owner.headers, "X-Request-ID": "req-audit-1"})
    entries = client.get("/api/v1/audit", params={"target_id": ws["id"]}, headers=owner.headers).json()["items"]
    actions = [e["action"] for e in entries]
    assert actions == ["workspace.pending_deletion", "workspace.provisioning", "workspace.create"]
    deletion = entries[0]
    assert deletion["request_id"] == "req-audit-1"
    assert deletion["before"]["lifecycle_state"] == "provisioning"
    assert deletion["after"]["lifecycle_state"] == "pending_deletion"
    assert deletion["actor"].startswith("account:")


def test_openapi_and_health(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/api/v1/signup", "/api/v1/workspaces", "/api/v1/tokens", "/api/v1/audit"} <= set(spec["paths"])
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["database"] == "ok"
    assert "canopy_http_requests_total" in client.get("/metrics").text
    r = client.get("/api/v1/nope")
    assert r.status_code == 404 and r.headers["content-type"] == PROBLEM
