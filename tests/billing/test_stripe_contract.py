"""The production dialect's requests, as the SDK sends them over HTTP to a scripted Stripe on loopback.

localstripe has no Prices, no ``invoice=`` on invoice items and no finalization, so the production shape of those
calls is checked here: a tiny server answers like Stripe and records each request (real HTTP, nothing patched).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import stripe

from billing.engine.pricing import PROFESSIONAL
from billing.gateway import Customer, InvoiceStatus, invoice_request
from billing.stripe_gateway import StripeApi, StripeGateway
from tests.billing.receivers import Received, Recorder, serve
from tests.billing.test_stripe_gateway import february_draft

LIVE_KEY = "sk_live_contract"


def listing(data: list[dict[str, Any]]) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": False, "url": "/v1/x"}


def missing(what: str) -> tuple[int, dict[str, Any]]:
    return 404, {"error": {"type": "invalid_request_error", "code": "resource_missing", "message": f"No such {what}"}}


@dataclass
class ScriptedStripe:
    """Answers the gateway's calls the way Stripe does, for one customer and one invoice."""

    decline_payment: bool = False
    items: list[dict[str, Any]] = field(default_factory=list)
    invoice_status: str = "draft"
    listed: bool = False  # whether the invoice shows in listings (once created)
    embedded_lines: int = 10  # how many lines an invoice object embeds (Stripe: the first 10)

    def customer(self, default_pm: str | None) -> dict[str, Any]:
        return {
            "id": "cus_1",
            "object": "customer",
            "metadata": {"canopy_organization_id": "org-1"},
            "invoice_settings": {"default_payment_method": default_pm},
        }

    def invoice(self) -> dict[str, Any]:
        due = sum(item["amount"] for item in self.items)
        paid = due if self.invoice_status == "paid" else 0
        return {
            "id": "in_1",
            "object": "invoice",
            "customer": "cus_1",
            "status": self.invoice_status,
            "currency": "usd",
            "amount_due": due,
            "amount_paid": paid,
            "metadata": {"canopy_invoice_key": "inv-1"},
            "lines": {
                "object": "list",
                "data": self._lines()[: self.embedded_lines],
                "has_more": len(self.items) > self.embedded_lines,
                "url": "/v1/invoices/in_1/lines",
            },
        }

    def invoice_payment(self) -> dict[str, Any]:
        payment = {"type": "payment_intent", "payment_intent": "pi_1"}
        return {"id": "inpay_1", "object": "invoice_payment", "invoice": "in_1", "payment": payment}

    def answer(self, request: Received) -> tuple[int, bytes]:
        status, body = self._route(request.method, urlsplit(request.path).path, dict(parse_qsl(request.body.decode())))
        return status, json.dumps(body).encode()

    def _route(self, method: str, path: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        routes: dict[tuple[str, str], Any] = {
            ("GET", "/v1/prices"): lambda: (200, listing([])),
            ("GET", "/v1/products/canopy-professional"): lambda: missing("product"),
            ("POST", "/v1/products"): lambda: (200, {"id": form["id"], "object": "product"}),
            ("POST", "/v1/prices"): lambda: (200, {"id": "price_1", "object": "price"}),
            ("GET", "/v1/customers"): lambda: (200, listing([])),
            ("POST", "/v1/customers"): lambda: (200, self.customer(None)),
            ("POST", "/v1/payment_methods/pm_card_visa/attach"): lambda: (
                200,
                {"id": "pm_1", "object": "payment_method"},
            ),
            ("POST", "/v1/customers/cus_1"): lambda: (200, self.customer("pm_1")),
            ("GET", "/v1/customers/cus_1"): lambda: (200, self.customer("pm_1")),
            ("GET", "/v1/customers/cus_gone"): lambda: (200, {"id": "cus_gone", "object": "customer", "deleted": True}),
            ("GET", "/v1/invoice_payments"): lambda: (200, listing([self.invoice_payment()])),
            ("GET", "/v1/invoices"): lambda: (200, listing([self.invoice()] if self.listed else [])),
            ("POST", "/v1/invoices"): lambda: (200, self.invoice()),
            ("GET", "/v1/invoices/in_1"): lambda: (200, self.invoice()),
            ("GET", "/v1/invoices/in_1/lines"): lambda: (200, listing(self._lines())),
            ("POST", "/v1/invoiceitems"): self._add_item(form),
            ("POST", "/v1/invoices/in_1/finalize"): self._move("open"),
            ("POST", "/v1/invoices/in_1/pay"): self._pay,
        }
        handler = routes.get((method, path))
        return handler() if handler else (500, {"error": {"type": "api_error", "message": f"unscripted {path}"}})

    def _lines(self) -> list[dict[str, Any]]:
        return [{"id": f"il_{i}", "object": "line_item", **item} for i, item in enumerate(self.items)]

    def _add_item(self, form: dict[str, str]) -> Any:
        def add() -> tuple[int, dict[str, Any]]:
            metadata = {k[len("metadata[") : -1]: v for k, v in form.items() if k.startswith("metadata[")}
            self.items.append({"amount": int(form["amount"]), "metadata": metadata})
            return 200, {"id": f"ii_{len(self.items)}", "object": "invoiceitem"}

        return add

    def _move(self, status: str) -> Any:
        def move() -> tuple[int, dict[str, Any]]:
            self.invoice_status = status
            return 200, self.invoice()

        return move

    def _pay(self) -> tuple[int, dict[str, Any]]:
        if self.decline_payment:
            error = {"type": "card_error", "code": "card_declined", "message": "Your card was declined."}
            return 402, {"error": error}
        self.invoice_status = "paid"
        return 200, self.invoice()


@pytest.fixture
def scripted() -> Iterator[tuple[ScriptedStripe, Recorder, StripeGateway]]:
    script = ScriptedStripe()
    with serve(script.answer) as (url, recorder):
        client = stripe.StripeClient(LIVE_KEY, base_addresses={"api": url}, max_network_retries=0)
        yield script, recorder, StripeGateway(client, StripeApi.stripe)


def posts(recorder: Recorder, path: str) -> list[tuple[dict[str, str], dict[str, str]]]:
    """The form and headers of each POST to ``path``."""
    return [
        (dict(parse_qsl(r.body.decode())), r.headers)
        for r in recorder.requests
        if r.method == "POST" and urlsplit(r.path).path == path
    ]


def test_the_seat_price_is_a_price_found_by_lookup_key(
    scripted: tuple[ScriptedStripe, Recorder, StripeGateway],
) -> None:
    _, recorder, gateway = scripted
    assert gateway.ensure_seat_price(PROFESSIONAL) == "price_1"
    lookup = recorder.requests[0]
    assert (lookup.method, urlsplit(lookup.path).path) == ("GET", "/v1/prices")
    assert ("lookup_keys[0]", "canopy-professional-seat-month-1000-usd") in parse_qsl(urlsplit(lookup.path).query)
    [(product, _)] = posts(recorder, "/v1/products")
    assert product == {"id": "canopy-professional", "name": "Canopy Professional"}
    [(price, headers)] = posts(recorder, "/v1/prices")
    assert price == {
        "product": "canopy-professional",
        "currency": "usd",
        "unit_amount": "1000",
        "recurring[interval]": "month",
        "recurring[usage_type]": "licensed",
        "lookup_key": "canopy-professional-seat-month-1000-usd",
        "metadata[canopy_price]": "canopy-professional-seat-month-1000-usd",
    }
    assert headers["Idempotency-Key"] == "canopy:price:canopy-professional-seat-month-1000-usd:create"
    assert not [r for r in recorder.requests if "/v1/plans" in r.path]


def test_an_invoice_is_a_draft_filled_with_our_items_then_finalized_and_paid(
    scripted: tuple[ScriptedStripe, Recorder, StripeGateway],
) -> None:
    _, recorder, gateway = scripted
    customer = gateway.ensure_customer("org-1", "owner@example.com", "Acme")
    gateway.set_default_payment_method(customer.id, "pm_card_visa")
    draft = february_draft()
    invoice = gateway.create_invoice(invoice_request("inv-1", customer.id, draft, price_id="price_1"))
    assert (invoice.status, invoice.amount_due, invoice.invoice_key) == (InvoiceStatus.open, 3893, "inv-1")
    result = gateway.pay_invoice(invoice.id, "inv-1", attempt=1)
    assert result.succeeded and result.invoice.amount_paid == 3893

    [(created, _)] = posts(recorder, "/v1/invoices")
    assert created == {
        "customer": "cus_1",
        "currency": "usd",
        "description": "Canopy Professional, February 2026",
        "collection_method": "charge_automatically",
        "auto_advance": "false",
        "pending_invoice_items_behavior": "exclude",
        "metadata[canopy_invoice_key]": "inv-1",
    }
    items = posts(recorder, "/v1/invoiceitems")
    assert [form["amount"] for form, _ in items] == [str(line.amount_cents) for line in draft.lines]
    first_day = datetime(2026, 2, 1, tzinfo=UTC).timestamp()
    for (form, _), line in zip(items, draft.lines, strict=True):
        assert form["invoice"] == "in_1" and form["currency"] == "usd" and form["customer"] == "cus_1"
        assert int(form["period[start]"]) == first_day + (line.first_day.day - 1) * 86400
        assert int(form["period[end]"]) - int(form["period[start]"]) == line.days * 86400
        assert form["metadata[seats]"] == str(line.seats) and form["metadata[days]"] == str(line.days)
        assert form["metadata[canopy_price]"] == "price_1"
        assert "period_start" not in form and "plan" not in form
    [(finalize, _)] = posts(recorder, "/v1/invoices/in_1/finalize")
    assert finalize == {"auto_advance": "false"}
    assert [form for form, _ in posts(recorder, "/v1/invoices/in_1/pay")] == [{}]
    assert not [r for r in recorder.requests if re.search(r"/v1/(plans|subscriptions)", r.path)]


def test_every_mutating_call_carries_a_deterministic_idempotency_key(
    scripted: tuple[ScriptedStripe, Recorder, StripeGateway],
) -> None:
    _, recorder, gateway = scripted
    customer = gateway.ensure_customer("org-1", "owner@example.com", "Acme")
    gateway.set_default_payment_method(customer.id, "pm_card_visa")
    gateway.create_invoice(invoice_request("inv-1", customer.id, february_draft()))
    gateway.pay_invoice("in_1", "inv-1", attempt=1)
    keys = [(urlsplit(r.path).path, r.headers.get("Idempotency-Key")) for r in recorder.requests if r.method == "POST"]
    assert keys == [
        ("/v1/customers", "canopy:organization:org-1:customer"),
        ("/v1/payment_methods/pm_card_visa/attach", "canopy:customer:cus_1:payment-method:pm_card_visa:attach"),
        ("/v1/customers/cus_1", "canopy:customer:cus_1:payment-method:pm_card_visa:default"),
        ("/v1/invoices", "canopy:invoice:inv-1:create"),
        ("/v1/invoiceitems", "canopy:line:inv-1:0:create"),
        ("/v1/invoiceitems", "canopy:line:inv-1:1:create"),
        ("/v1/invoiceitems", "canopy:line:inv-1:2:create"),
        ("/v1/invoices/in_1/finalize", "canopy:invoice:inv-1:finalize"),
        ("/v1/invoices/in_1/pay", "canopy:invoice:inv-1:pay:1"),
    ]
    assert all(r.headers["Authorization"] == f"Bearer {LIVE_KEY}" for r in recorder.requests)
    assert all(r.headers["Stripe-Version"] == stripe.api_version for r in recorder.requests)


def test_a_card_error_when_paying_is_a_failed_payment(scripted: tuple[ScriptedStripe, Recorder, StripeGateway]) -> None:
    script, _, gateway = scripted
    script.decline_payment = True
    customer = gateway.ensure_customer("org-1", "owner@example.com", "Acme")
    gateway.set_default_payment_method(customer.id, "pm_card_visa")
    invoice = gateway.create_invoice(invoice_request("inv-1", customer.id, february_draft()))
    result = gateway.pay_invoice(invoice.id, "inv-1", attempt=1)
    assert not result.succeeded
    assert result.failure_message == "Your card was declined."
    assert (result.invoice.status, result.invoice.amount_paid) == (InvoiceStatus.open, 0)


def requests_to(recorder: Recorder, method: str, path: str) -> list[list[tuple[str, str]]]:
    """The query of each ``method`` request to ``path``."""
    return [
        parse_qsl(urlsplit(r.path).query)
        for r in recorder.requests
        if (r.method, urlsplit(r.path).path) == (method, path)
    ]


def test_customers_invoices_and_payments_are_read_back(
    scripted: tuple[ScriptedStripe, Recorder, StripeGateway],
) -> None:
    script, recorder, gateway = scripted
    customer = gateway.ensure_customer("org-1", "owner@example.com", "Acme")
    gateway.set_default_payment_method(customer.id, "pm_card_visa")
    assert gateway.retrieve_customer("cus_1") == Customer("cus_1", "org-1", "pm_1")
    assert gateway.retrieve_customer("cus_gone") is None  # Stripe answers a deleted customer with a stub

    assert gateway.invoice_of_payment("pi_1") == "in_1"
    [query] = requests_to(recorder, "GET", "/v1/invoice_payments")
    assert set(query) == {("payment[type]", "payment_intent"), ("payment[payment_intent]", "pi_1"), ("limit", "1")}

    created = gateway.create_invoice(invoice_request("inv-1", customer.id, february_draft()))
    script.listed = True
    recorder.requests.clear()
    assert list(gateway.customer_invoices("cus_1")) == [created]
    assert [urlsplit(r.path).path for r in recorder.requests] == ["/v1/invoices"]  # one call, lines embedded
    assert set(requests_to(recorder, "GET", "/v1/invoices")[0]) == {("customer", "cus_1"), ("limit", "100")}

    script.embedded_lines = 1  # more lines than the listing embeds: they are read apart
    recorder.requests.clear()
    assert list(gateway.customer_invoices("cus_1")) == [created]
    assert [urlsplit(r.path).path for r in recorder.requests] == ["/v1/invoices", "/v1/invoices/in_1/lines"]
