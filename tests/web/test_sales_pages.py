"""The sales console over HTTP: finance sees customers and records a bank transfer on an invoice; sales renew the
contract (the term grows by 12 months, the next annual invoice is issued); finance cannot renew nor sales record
payments (no button, and the posted form is the 404 page); another organization's owner gets the 404 page."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

import httpx

from tests.web.conftest import Server
from tests.web.console import api, staff
from tests.web.pages import Page, new_client, post_login, sign_up_and_verify


@contextmanager
def signed_in(server: Server, role: str) -> Iterator[httpx.Client]:
    """A browser-like client signed in as a new staff account of ``role``."""
    email, _ = staff(server, role)
    with new_client(server.loopback) as client:
        assert post_login(client, email).status_code == 303
        yield client


def test_finance_records_a_payment_and_sales_renew(server: Server) -> None:
    slug = f"pay-{uuid.uuid4().hex[:6]}"
    _, sales_token = staff(server, "sales")
    body = {
        "name": f"Acme {slug}",
        "owner_email": f"owner@{slug}.example.com",
        "contract": {
            "seats_purchased": 4,
            "annual_price_per_seat_cents": 10000,
            "start_date": date.today().isoformat(),
            "billing_contact_email": f"ap@{slug}.example.com",
            "billing_contact_name": "AP",
        },
        "workspace": {"slug": slug},
    }
    with api(server, sales_token) as client:
        made = client.post("/api/v1/sales/customers", json=body)
    assert made.status_code == 201, made.text
    organization_id = made.json()["organization_id"]
    [invoice] = made.json()["contract"]["invoices"]
    path = f"/sales/customers/{organization_id}"

    with signed_in(server, "finance") as finance:
        assert f"Acme {slug}" in finance.get("/sales").text
        html = finance.get(path).text
        assert "Record payment" in html and "Renew for 12 months" not in html
        token = Page(html).value("csrf_token")
        paid = finance.post(
            f"{path}/invoices/{invoice['id']}/payment", data={"reference": "WIRE-123", "csrf_token": token}
        )
        assert paid.status_code == 303, paid.text
        assert "WIRE-123" in finance.get(path).text
        assert finance.post(f"{path}/renewal", data={"csrf_token": token}).status_code == 404
        assert finance.get("/sales/customers/new").status_code == 403

    with signed_in(server, "sales") as sales:
        html = sales.get(path).text
        assert "Renew for 12 months" in html and "Record payment" not in html
        token = Page(html).value("csrf_token")
        assert sales.post(f"{path}/renewal", data={"csrf_token": "forged"}).status_code == 403
        renewed = sales.post(f"{path}/renewal", data={"csrf_token": token})
        assert renewed.status_code == 303, renewed.text
        payment = {"reference": "X", "csrf_token": token}
        assert sales.post(f"{path}/invoices/{invoice['id']}/payment", data=payment).status_code == 404
    with api(server, sales_token) as client:
        contract = client.get(f"/api/v1/sales/customers/{organization_id}").json()["contract"]
    start = date.fromisoformat(contract["start_date"])
    assert date.fromisoformat(contract["end_date"]).year == start.year + 2
    invoices = [(i["kind"], i["contract_year"], i["payment_reference"]) for i in contract["invoices"]]
    assert sorted(invoices, key=lambda i: i[1]) == [("annual", 1, "WIRE-123"), ("annual", 2, None)]

    other = f"other-{uuid.uuid4().hex[:6]}"
    with new_client(server.loopback) as owner:
        sign_up_and_verify(owner, f"owner@{other}.example.com", other)
        assert owner.get(path).status_code == 404
        assert owner.get(f"/sales/workspaces/{made.json()['workspaces'][0]['id']}/status").status_code == 404


def test_the_form_explains_bad_input_and_keeps_what_was_typed(server: Server) -> None:
    taken = f"taken-{uuid.uuid4().hex[:6]}"
    with new_client(server.loopback) as owner:
        sign_up_and_verify(owner, f"owner@{taken}.example.com", taken)
    with signed_in(server, "sales") as sales:
        token = Page(sales.get("/sales/customers/new").text).value("csrf_token")
        form = {
            "name": "Typed Corp",
            "owner_email": "it@typed.example.com",
            "seats_purchased": "0",
            "annual_price": "12.345",
            "start_date": date.today().isoformat(),
            "payment_terms_days": "30",
            "billing_contact_email": "ap@typed.example.com",
            "billing_contact_name": "AP",
            "slug": f"typed-{uuid.uuid4().hex[:6]}",
            "csrf_token": token,
        }
        bad = sales.post("/sales/customers/new", data=form)
        assert bad.status_code == 422, bad.text
        page = Page(bad.text)
        assert page.said("seats_purchased-error") and page.said("annual_price-error")
        assert page.value("name") == "Typed Corp"
        clash = sales.post(
            "/sales/customers/new", data=form | {"seats_purchased": "5", "annual_price": "12", "slug": taken}
        )
        assert clash.status_code == 409 and "already taken" in Page(clash.text).said("slug-error")
        forged = sales.post("/sales/customers/new", data=form | {"csrf_token": "forged"})
        assert forged.status_code == 403
    [(count,)] = server.query("SELECT count(*) FROM organizations WHERE name = 'Typed Corp'")
    assert count == 0, "nothing was made"
