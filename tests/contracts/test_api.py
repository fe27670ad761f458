"""The contract API: who may create, read and pay what (another organization's contract is a 404), bad input as
problem+json, the first annual invoice at the contract's start held by the gateway as an invoice paid by transfer,
payments recorded once, audited, overdue invoices listed and mailed about once."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

import stripe
from sqlalchemy import select

from control_plane.audit.models import AuditEntry
from control_plane.contracts.models import ContractInvoice
from control_plane.core.authz import Role
from control_plane.core.clock import utcnow
from control_plane.core.db import session_scope
from control_plane.workspaces.models import Tier
from tests.billed_plane import BilledPlane
from tests.contracts.conftest import contract_run, subjects_to

PROBLEM = "application/problem+json"


def enterprise_org(billed: BilledPlane, slug: str) -> tuple[uuid.UUID, uuid.UUID]:
    """An Enterprise workspace (provisioning; no worker needed here) of a new organization: (workspace, org)."""
    workspace_id = billed.plane.create_workspace(slug, tier=Tier.enterprise)
    return workspace_id, billed.plane.row(workspace_id).organization_id


def contract_body(organization_id: uuid.UUID, start: date, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "organization_id": str(organization_id),
        "seats_purchased": 25,
        "annual_price_per_seat_cents": 12_000,
        "start_date": start.isoformat(),
        "payment_terms_days": 30,
        "billing_contact_email": f"ap-{organization_id.hex[:6]}@customer.example",
        "billing_contact_name": "Accounts Payable",
    }
    return body | overrides


def test_only_sales_and_admin_create_contracts_and_bad_input_is_a_problem(billed: BilledPlane) -> None:
    plane = billed.plane
    workspace_id, org = enterprise_org(billed, "ctauthz")
    body = contract_body(org, utcnow().date())
    for headers in (
        plane.owner_headers[workspace_id],
        plane.staff_headers(Role.operator),
        plane.staff_headers(Role.support),
        plane.staff_headers(Role.finance),
    ):
        refused = plane.api.post("/api/v1/contracts", json=body, headers=headers)
        assert refused.status_code == 403, refused.text
        assert refused.headers["content-type"] == PROBLEM
    sales = plane.staff_headers(Role.sales)
    for bad in (
        {"seats_purchased": 0},
        {"annual_price_per_seat_cents": 10**9 + 1},
        {"payment_terms_days": 181},
        {"billing_contact_email": "not an address"},
        {"billing_contact_name": ""},
        {"currency": "eur"},
        {"start_date": "2027-02-30"},
        {"discount": 5},
    ):
        answer = plane.api.post("/api/v1/contracts", json=body | bad, headers=sales)
        assert answer.status_code == 422, (bad, answer.text)
        assert answer.headers["content-type"] == PROBLEM
    missing = plane.api.post("/api/v1/contracts", json=body | {"organization_id": str(uuid.uuid4())}, headers=sales)
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM
    assert plane.api.post("/api/v1/contracts", json=body, headers=sales).status_code == 201
    again = plane.api.post("/api/v1/contracts", json=body, headers=plane.staff_headers(Role.admin))
    assert again.status_code == 409 and again.json()["type"].endswith("contract-exists")


def test_the_annual_invoice_is_issued_at_the_start_and_held_by_the_gateway(
    billed: BilledPlane, stripe_client: stripe.StripeClient
) -> None:
    plane = billed.plane
    workspace_id, org = enterprise_org(billed, "ctannual")
    start = utcnow().date()
    created = plane.api.post(
        "/api/v1/contracts", json=contract_body(org, start, seats_purchased=40), headers=plane.staff_headers(Role.sales)
    )
    assert created.status_code == 201, created.text
    contract = created.json()
    assert contract["end_date"] == start.replace(year=start.year + 1).isoformat()
    assert contract["licence"]["phase"] == "active" and contract["licence"]["read_only"] is False
    [invoice] = contract["invoices"]
    assert (invoice["kind"], invoice["contract_year"], invoice["quarter"]) == ("annual", 1, 0)
    assert (invoice["seats"], invoice["amount_cents"]) == (40, 40 * 12_000)
    assert invoice["due_at"][:10] == (start + timedelta(days=30)).isoformat()
    assert subjects_to(contract["billing_contact_email"]) == ["Canopy invoice: $4,800.00 due"]

    contract_run(uuid.UUID(contract["id"]))
    contract_run(uuid.UUID(contract["id"]))  # a rerun adds nothing
    shown = plane.api.get(f"/api/v1/contracts/{contract['id']}", headers=plane.owner_headers[workspace_id]).json()
    [invoice] = shown["invoices"]
    assert invoice["state"] == "open"
    with session_scope() as session:
        row = session.get(ContractInvoice, uuid.UUID(invoice["id"]))
        assert row is not None and row.gateway_invoice_id is not None
        gateway_id = row.gateway_invoice_id
    held = stripe_client.v1.invoices.retrieve(gateway_id)
    assert held.amount_due == 40 * 12_000


def test_customers_see_only_their_own_contract(billed: BilledPlane) -> None:
    plane = billed.plane
    sales = plane.staff_headers(Role.sales)
    mine, my_org = enterprise_org(billed, "ctmine")
    theirs, their_org = enterprise_org(billed, "cttheirs")
    contract = plane.api.post("/api/v1/contracts", json=contract_body(my_org, utcnow().date()), headers=sales).json()
    plane.api.post("/api/v1/contracts", json=contract_body(their_org, utcnow().date()), headers=sales)
    path = f"/api/v1/contracts/{contract['id']}"
    assert plane.api.get(path, headers=plane.owner_headers[mine]).status_code == 200
    assert plane.api.get(path, headers=plane.member_headers(mine, Role.billing)).status_code == 200
    hidden = plane.api.get(path, headers=plane.owner_headers[theirs])
    assert hidden.status_code == 404 and hidden.headers["content-type"] == PROBLEM
    listed = plane.api.get("/api/v1/contracts", headers=plane.owner_headers[theirs]).json()
    assert [row["organization_id"] for row in listed] == [str(their_org)]
    invoices = plane.api.get("/api/v1/contract-invoices", headers=plane.owner_headers[theirs]).json()
    assert {row["contract_id"] for row in invoices} == {listed[0]["id"]}
    renewal = plane.api.post(f"{path}/renewal", headers=plane.owner_headers[mine])
    assert renewal.status_code == 403


def test_finance_records_a_payment_once_and_overdue_invoices_are_listed_and_mailed(billed: BilledPlane) -> None:
    plane = billed.plane
    _, org = enterprise_org(billed, "ctpay")
    sales, finance = plane.staff_headers(Role.sales), plane.staff_headers(Role.finance)
    contract = plane.api.post(
        "/api/v1/contracts", json=contract_body(org, utcnow().date(), payment_terms_days=10), headers=sales
    ).json()
    [invoice] = contract["invoices"]
    overdue_before = plane.api.get("/api/v1/contract-invoices?overdue=true", headers=finance).json()
    assert invoice["id"] not in [row["id"] for row in overdue_before]

    billed.advance(timedelta(days=11))
    overdue = plane.api.get("/api/v1/contract-invoices?overdue=true", headers=finance).json()
    assert invoice["id"] in [row["id"] for row in overdue]
    contract_run(uuid.UUID(contract["id"]))
    contract_run(uuid.UUID(contract["id"]))
    contact = contract["billing_contact_email"]
    assert [s for s in subjects_to(contact) if s.startswith("Overdue")] == ["Overdue: Canopy invoice of $3,000.00"]

    path = f"/api/v1/contract-invoices/{invoice['id']}/payment"
    for role in (Role.sales, Role.support, Role.operator):
        assert plane.api.post(path, json={"reference": "x"}, headers=plane.staff_headers(role)).status_code == 403
    assert plane.api.post(path, json={"reference": ""}, headers=finance).status_code == 422
    nowhere = f"/api/v1/contract-invoices/{uuid.uuid4()}/payment"
    unknown = plane.api.post(nowhere, json={"reference": "x"}, headers=finance)
    assert unknown.status_code == 404
    paid = plane.api.post(path, json={"reference": "WIRE-2027-0042"}, headers=finance)
    assert paid.status_code == 200 and paid.json()["state"] == "paid", paid.text
    assert plane.api.post(path, json={"reference": "WIRE-2027-0042"}, headers=finance).status_code == 200
    other = plane.api.post(path, json={"reference": "WIRE-OTHER"}, headers=plane.staff_headers(Role.admin))
    assert other.status_code == 409
    overdue = plane.api.get("/api/v1/contract-invoices?overdue=true", headers=finance).json()
    assert invoice["id"] not in [row["id"] for row in overdue]
    contract_run(uuid.UUID(contract["id"]))  # tells the gateway (localstripe keeps its draft: see docs/billing.md)
    with session_scope() as session:
        actions = session.scalars(select(AuditEntry.action).where(AuditEntry.organization_id == org)).all()
    assert actions.count("contract.create") == 1 and actions.count("contract_invoice.paid") == 1
