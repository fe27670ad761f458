"""The sales API in-process: a salesperson creates an Enterprise customer in one request (organization, owner
invitation mailed, contract with its first invoice, Enterprise workspace waiting for the owner as its admin); the
owner's invitation link sets their password and hands it to the workspace; who may do what (owners 403 for
Enterprise workspaces, support/operator 403, finance reads, another organization 404), bad input 422, idempotency."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

from fastapi.testclient import TestClient

from control_plane.accounts.models import Account
from control_plane.core.db import session_scope
from control_plane.mail import service as mail
from control_plane.workspaces.models import Workspace
from tests.control_plane.conftest import PASSWORD, Owner, staff_token

PROBLEM = "application/problem+json"
INVITATION = re.compile(r"/invitations/(invite_[A-Za-z0-9_-]{43})")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def staff(role: str) -> dict[str, str]:
    return bearer(staff_token(f"{role}-{uuid.uuid4().hex[:6]}@canopy.example", role))


def customer_body(**changes: Any) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    body: dict[str, Any] = {
        "name": f"Acme {tag}",
        "owner_email": f"owner-{tag}@acme.example",
        "contract": {
            "seats_purchased": 50,
            "annual_price_per_seat_cents": 9600,
            "start_date": date.today().isoformat(),
            "payment_terms_days": 30,
            "billing_contact_email": f"ap-{tag}@acme.example",
            "billing_contact_name": "Accounts Payable",
        },
        "workspace": {"slug": f"acme-{tag}", "display_name": "Acme"},
    }
    return body | changes


def workspace_row(workspace_id: str) -> Workspace:
    with session_scope() as session:
        ws = session.get(Workspace, uuid.UUID(workspace_id))
        assert ws is not None
        session.expunge(ws)
        return ws


def invitation_token(email: str) -> str:
    with session_scope() as session:
        bodies = [m.body for m in mail.recent(session, limit=10, to=email)]
    found = [match.group(1) for body in bodies if (match := INVITATION.search(body))]
    assert found, bodies
    return found[0]


def test_sales_creates_a_customer_whose_owner_takes_over_the_workspace(client: TestClient) -> None:
    sales = staff("sales")
    body = customer_body()
    created = client.post("/api/v1/sales/customers", json=body, headers=sales | {"Idempotency-Key": "k1"})
    assert created.status_code == 201, created.text
    customer = created.json()
    assert customer["name"] == body["name"] and customer["owner_email"] == body["owner_email"]
    assert customer["owner_has_signed_up"] is False
    contract = customer["contract"]
    assert contract["seats_purchased"] == 50 and contract["seats_used"] == 0
    assert [(i["kind"], i["amount_cents"]) for i in contract["invoices"]] == [("annual", 50 * 9600)]
    [ws] = customer["workspaces"]
    assert (ws["tier"], ws["slug"], ws["lifecycle_state"]) == ("enterprise", body["workspace"]["slug"], "provisioning")
    row = workspace_row(ws["id"])
    assert row.initial_admin_email == body["owner_email"] and row.initial_admin_password_hash is None

    replay = client.post("/api/v1/sales/customers", json=body, headers=sales | {"Idempotency-Key": "k1"})
    assert replay.status_code == 201 and replay.json()["organization_id"] == customer["organization_id"]
    again = client.post("/api/v1/sales/customers", json=body, headers=sales)
    assert again.status_code == 409 and again.headers["content-type"] == PROBLEM  # the address is taken

    # The owner has no password: no token until they follow the mailed invitation.
    refused = client.post("/api/v1/auth/token", json={"email": body["owner_email"], "password": PASSWORD})
    assert refused.status_code == 401
    link = f"/invitations/{invitation_token(body['owner_email'])}"
    page = client.get(link)
    assert page.status_code == 200 and 'id="password"' in page.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf
    accepted = client.post(link, data={"password": PASSWORD, "csrf_token": csrf.group(1)}, follow_redirects=False)
    assert accepted.status_code == 303, accepted.text
    assert client.get(link).status_code == 404, "the link works once"
    with session_scope() as session:
        owner = session.query(Account).filter_by(email=body["owner_email"]).one()
        assert owner.email_verified_at is not None
        owner_hash = owner.password_hash
    assert workspace_row(ws["id"]).initial_admin_password_hash == owner_hash, "handed to the waiting workspace"
    token = client.post("/api/v1/auth/token", json={"email": body["owner_email"], "password": PASSWORD})
    assert token.status_code == 201 and token.json()["role"] == "owner"
    own = client.get(f"/api/v1/sales/customers/{customer['organization_id']}", headers=bearer(token.json()["token"]))
    assert own.status_code == 200 and own.json()["owner_has_signed_up"] is True

    audit = client.get("/api/v1/audit", params={"organization_id": customer["organization_id"]}, headers=staff("admin"))
    actions = {e["action"] for e in audit.json()["items"]}
    assert {"customer.create", "organization.create", "invitation.create", "contract.create"} <= actions
    assert {"workspace.create", "workspace.initial_admin", "invitation.accept"} <= actions


def test_only_sales_and_admins_create_enterprise_workspaces_and_customers(
    client: TestClient, sign_up: Callable[[str], Owner]
) -> None:
    owner = sign_up(f"selfserve-{uuid.uuid4().hex[:6]}")
    enterprise = {"slug": f"ent-{uuid.uuid4().hex[:6]}", "tier": "enterprise"}
    refused = client.post("/api/v1/workspaces", json=enterprise, headers=owner.headers)
    assert refused.status_code == 403 and refused.headers["content-type"] == PROBLEM
    assert "enterprise" in refused.json()["detail"]
    for headers in (owner.headers, staff("support"), staff("operator"), staff("finance")):
        r = client.post("/api/v1/sales/customers", json=customer_body(), headers=headers)
        assert r.status_code == 403 and r.headers["content-type"] == PROBLEM, r.text
        staffed = enterprise | {"organization_id": owner.organization_id, "slug": f"ent-{uuid.uuid4().hex[:6]}"}
        r = client.post("/api/v1/workspaces", json=staffed, headers=headers)
        assert r.status_code == 403, r.text
    assert client.post("/api/v1/sales/customers", json=customer_body(), headers=staff("admin")).status_code == 201


def test_staff_creating_a_workspace_never_become_its_admin(client: TestClient, sign_up: Callable[[str], Owner]) -> None:
    owner = sign_up(f"owned-{uuid.uuid4().hex[:6]}")
    for tier in ("professional", "enterprise"):
        body = {"slug": f"{tier[:3]}-{uuid.uuid4().hex[:6]}", "tier": tier, "organization_id": owner.organization_id}
        made = client.post("/api/v1/workspaces", json=body, headers=staff("admin"))
        assert made.status_code == 201, made.text
        row = workspace_row(made.json()["id"])
        assert row.initial_admin_email == owner.email, "the organization's owner, not the admin who made it"
        assert row.initial_admin_password_hash and row.initial_admin_password_hash.startswith("$argon2id$")


def test_who_reads_customers(client: TestClient, sign_up: Callable[[str], Owner]) -> None:
    made = client.post("/api/v1/sales/customers", json=customer_body(), headers=staff("sales"))
    assert made.status_code == 201, made.text
    organization_id = made.json()["organization_id"]
    for role in ("finance", "support", "admin", "sales"):
        listed = client.get("/api/v1/sales/customers", headers=staff(role))
        assert listed.status_code == 200 and organization_id in {c["organization_id"] for c in listed.json()}
        one = client.get(f"/api/v1/sales/customers/{organization_id}", headers=staff(role))
        assert one.status_code == 200 and one.json()["contract"]["seats_purchased"] == 50
    assert client.get("/api/v1/sales/customers", headers=staff("operator")).status_code == 403
    other = sign_up(f"other-{uuid.uuid4().hex[:6]}")
    assert client.get(f"/api/v1/sales/customers/{organization_id}", headers=other.headers).status_code == 404
    assert client.get("/api/v1/sales/customers", headers=other.headers).json() == []
    assert client.get(f"/api/v1/sales/customers/{uuid.uuid4()}", headers=staff("sales")).status_code == 404


def test_bad_input_is_a_problem_naming_the_field(client: TestClient) -> None:
    sales = staff("sales")
    cases = [
        (customer_body(name=""), "name"),
        (customer_body(owner_email="not-an-email"), "owner_email"),
        (customer_body(extra="field"), "extra"),
        (customer_body(workspace={"slug": "ok-slug", "region": "Mars 1"}), "region"),
        (customer_body(workspace={"slug": "ok-slug", "cell": "c1"}), "cell"),
        (customer_body(workspace={"slug": "-bad-"}), "slug"),
        (customer_body(workspace={"slug": "www"}), "slug"),
    ]
    for field, value in (("seats_purchased", 0), ("annual_price_per_seat_cents", -1), ("payment_terms_days", 181)):
        body = customer_body()
        body["contract"][field] = value
        cases.append((body, field))
    bad_date = customer_body()
    bad_date["contract"]["start_date"] = "2026-02-30"
    cases.append((bad_date, "start_date"))
    for body, field in cases:
        r = client.post("/api/v1/sales/customers", json=body, headers=sales)
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, (field, r.text)
        assert field in r.text, (field, r.text)
    assert client.get("/api/v1/sales/customers/not-a-uuid", headers=sales).status_code == 422


def test_an_owner_with_a_password_is_handed_over_at_once(client: TestClient, sign_up: Callable[[str], Owner]) -> None:
    owner = sign_up(f"known-{uuid.uuid4().hex[:6]}")
    made = client.post("/api/v1/sales/customers", json=customer_body(owner_email=owner.email), headers=staff("sales"))
    assert made.status_code == 201, made.text
    assert made.json()["owner_has_signed_up"] is True
    with session_scope() as session:
        account = session.query(Account).filter_by(email=owner.email).one()
        subjects = [m.subject for m in mail.recent(session, limit=5, to=owner.email)]
        owner_hash = account.password_hash
    assert workspace_row(made.json()["workspaces"][0]["id"]).initial_admin_password_hash == owner_hash
    assert any(subject.startswith("Your Enterprise workspace") for subject in subjects), subjects
    assert not any("invited" in subject for subject in subjects), subjects


def test_an_admin_sends_a_lost_or_expired_owner_invitation_again(client: TestClient) -> None:
    body = customer_body()
    made = client.post("/api/v1/sales/customers", json=body, headers=staff("sales"))
    assert made.status_code == 201, made.text
    first = invitation_token(body["owner_email"])
    again = client.post(
        f"/api/v1/organizations/{made.json()['organization_id']}/invitations",
        json={"email": body["owner_email"], "role": "owner"},
        headers=staff("admin"),
    )
    assert again.status_code == 201, again.text
    second = invitation_token(body["owner_email"])
    assert second != first
    assert client.get(f"/invitations/{first}").status_code == 404, "the new link replaced the old one"
    assert client.get(f"/invitations/{second}").status_code == 200
