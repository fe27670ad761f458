"""The Stripe gateway against localstripe over HTTP: customers, cards, invoices of our lines, failed charges."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

import pytest
import stripe

from billing.engine.periods import InvoiceSpan, period_of
from billing.engine.pricing import PROFESSIONAL, InvoiceDraft, price_span
from billing.gateway import GatewayError, InvoiceStatus, PaymentMethodDeclined, invoice_request
from billing.stripe_gateway import StripeApi, StripeGateway
from tests.harness.localstripe import API_KEY, LocalStripe


@pytest.fixture
def gateway(stripe_client: stripe.StripeClient) -> StripeGateway:
    return StripeGateway(stripe_client, StripeApi.localstripe)


def february_draft(seats: list[int] | None = None) -> InvoiceDraft:
    """February 2026 (28 days), seats changing: 3 for 10 days, none for 2, 7 for 5, then 4."""
    daily = seats or [3] * 10 + [0] * 2 + [7] * 5 + [4] * 11
    first = date(2026, 2, 1)
    return price_span(InvoiceSpan(period_of(first), first, first + timedelta(days=len(daily))), daily)


def our_invoices(client: stripe.StripeClient, customer_id: str) -> list[Any]:
    """The customer's invoices that hold our lines (localstripe also keeps its $0 subscription invoice)."""
    return [i for i in client.v1.invoices.list({"customer": customer_id, "limit": 100}).data if i.total > 0]


def test_a_customer_is_created_once_per_organization(
    gateway: StripeGateway, stripe_client: stripe.StripeClient
) -> None:
    first = gateway.ensure_customer("org-1", "owner@example.com", "Acme")
    again = gateway.ensure_customer("org-1", "owner@example.com", "Acme")
    other = gateway.ensure_customer("org-2", "owner@example.com", "Acme's sister")
    assert first == again
    assert (first.organization_id, first.default_payment_method) == ("org-1", None)
    assert other.id != first.id and other.organization_id == "org-2"
    assert len(stripe_client.v1.customers.list({"email": "owner@example.com"}).data) == 2


def test_a_card_becomes_the_default_payment_method(gateway: StripeGateway, stripe_client: stripe.StripeClient) -> None:
    customer = gateway.ensure_customer("org-1", "owner@example.com", "Acme")
    updated = gateway.set_default_payment_method(customer.id, "pm_card_visa")
    assert updated.default_payment_method is not None and updated.default_payment_method.startswith("pm_")
    held = stripe_client.v1.customers.retrieve(customer.id).to_dict()
    assert held["invoice_settings"]["default_payment_method"] == updated.default_payment_method
    assert stripe_client.v1.payment_methods.retrieve(updated.default_payment_method).customer == customer.id


def test_a_card_declined_at_attachment_is_reported(gateway: StripeGateway) -> None:
    customer = gateway.ensure_customer("org-1", "owner@example.com", "Acme")
    with pytest.raises(PaymentMethodDeclined, match="declined"):
        gateway.set_default_payment_method(customer.id, "pm_card_visa_chargeDeclined")
    assert gateway.ensure_customer("org-1", "owner@example.com", "Acme").default_payment_method is None


def test_an_invoice_of_our_lines_is_paid_to_the_cent(
    gateway: StripeGateway, stripe_client: stripe.StripeClient
) -> None:
    customer = gateway.ensure_customer("org-1", "owner@example.com", "Acme")
    gateway.set_default_payment_method(customer.id, "pm_card_visa")
    draft = february_draft()
    # 3 x 10 + 7 x 5 + 4 x 11 = 109 seat-days x $10 / 28 = $38.928... -> $38.93
    assert draft.total_cents == 3893
    request = invoice_request("inv-1", customer.id, draft, gateway.ensure_seat_price(PROFESSIONAL))

    invoice = gateway.create_invoice(request)
    assert invoice.status is InvoiceStatus.draft  # localstripe has no finalize: it is paid from draft
    assert (invoice.invoice_key, invoice.amount_due) == ("inv-1", 3893)
    assert sorted(invoice.line_amounts) == sorted(line.amount_cents for line in draft.lines)

    result = gateway.pay_invoice(invoice.id, "inv-1", attempt=1)
    assert result.succeeded and result.failure_message is None
    assert (result.invoice.status, result.invoice.amount_paid) == (InvoiceStatus.paid, 3893)
    held = stripe_client.v1.invoices.retrieve(invoice.id)
    assert (held.status, held.amount_paid, held.currency) == ("paid", 3893, "usd")
    lines = stripe_client.v1.invoices.line_items.list(invoice.id).data
    described = sorted((line.amount, line.metadata["seats"], line.metadata["days"]) for line in lines if line.amount)
    assert described == [(1071, "3", "10"), (1250, "7", "5"), (1572, "4", "11")]
    assert {line.metadata["canopy_price"] for line in lines if line.amount} == {request.price_id}

    again = gateway.pay_invoice(invoice.id, "inv-1", attempt=2)
    assert again.succeeded
    assert len(stripe_client.v1.charges.list({"customer": customer.id}).data) == 1  # charged once


def test_creating_the_same_invoice_again_finds_it(gateway: StripeGateway, stripe_client: stripe.StripeClient) -> None:
    customer = gateway.ensure_customer("org-1", "owner@example.com", "Acme")
    request = invoice_request("inv-1", customer.id, february_draft())
    first = gateway.create_invoice(request)
    assert gateway.create_invoice(request) == first
    assert [i.id for i in our_invoices(stripe_client, customer.id)] == [first.id]
    march = invoice_request("inv-2", customer.id, february_draft([1] * 28))
    assert gateway.create_invoice(march).id != first.id
    assert len(our_invoices(stripe_client, customer.id)) == 2


class LosesResponsesAfter(stripe.RequestsClient):
    """A real HTTP transport whose connection drops after the ``posts``-th POST was sent (its answer is lost)."""

    def __init__(self, posts: int) -> None:
        super().__init__()
        self.posts_left = posts

    def request(  # type: ignore[override]  # stripe's HTTPClient and RequestsClient disagree on the signature
        self, method: str, url: str, headers: Mapping[str, str] | None, post_data: Any = None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        answer = super().request(method, url, headers, post_data)
        if method == "post":
            self.posts_left -= 1
            if self.posts_left < 0:
                raise stripe.APIConnectionError("connection lost after the request was sent")  # type: ignore[no-untyped-call]
        return answer


@pytest.mark.parametrize("posts_before_the_cut", range(6))
def test_an_interrupted_creation_is_completed_once(
    localstripe: LocalStripe, stripe_client: stripe.StripeClient, posts_before_the_cut: int
) -> None:
    """However far the first run got (plan, subscription, three items, invoice), the rerun makes one invoice."""
    gateway = StripeGateway(stripe_client, StripeApi.localstripe)
    customer = gateway.ensure_customer("org-1", "owner@example.com", "Acme")
    gateway.set_default_payment_method(customer.id, "pm_card_visa")
    request = invoice_request("inv-1", customer.id, february_draft())
    cut = stripe.StripeClient(
        API_KEY,
        base_addresses={"api": localstripe.endpoint},
        http_client=LosesResponsesAfter(posts_before_the_cut),
        max_network_retries=0,
    )
    with pytest.raises(stripe.APIConnectionError):
        StripeGateway(cut, StripeApi.localstripe).create_invoice(request)

    invoice = gateway.create_invoice(request)
    assert gateway.pay_invoice(invoice.id, "inv-1", attempt=1).invoice.amount_paid == 3893
    assert [i.id for i in our_invoices(stripe_client, customer.id)] == [invoice.id]
    assert stripe_client.v1.invoice_items.list({"customer": customer.id}).data == []  # nothing left pending


def test_a_card_that_fails_at_charge_leaves_the_invoice_open(gateway: StripeGateway) -> None:
    customer = gateway.ensure_customer("org-1", "owner@example.com", "Acme")
    gateway.set_default_payment_method(customer.id, "pm_card_chargeCustomerFail")  # attaches, fails when charged
    invoice = gateway.create_invoice(invoice_request("inv-1", customer.id, february_draft()))

    failed = gateway.pay_invoice(invoice.id, "inv-1", attempt=1)
    assert not failed.succeeded
    assert failed.failure_message == "Your card was declined."
    assert (failed.invoice.status, failed.invoice.amount_due, failed.invoice.amount_paid) == ("open", 3893, 0)
    assert not gateway.pay_invoice(invoice.id, "inv-1", attempt=2).succeeded  # a retry fails the same way

    gateway.set_default_payment_method(customer.id, "pm_card_visa")  # the owner updates the card
    recovered = gateway.pay_invoice(invoice.id, "inv-1", attempt=3)
    assert recovered.succeeded and recovered.invoice.amount_paid == 3893
    assert gateway.retrieve_invoice(invoice.id) == recovered.invoice


def test_paying_without_a_card_reports_it_and_charges_nothing(gateway: StripeGateway) -> None:
    customer = gateway.ensure_customer("org-1", "owner@example.com", "Acme")
    invoice = gateway.create_invoice(invoice_request("inv-1", customer.id, february_draft()))
    result = gateway.pay_invoice(invoice.id, "inv-1", attempt=1)
    assert not result.succeeded
    assert result.failure_message == "The customer has no default payment method."
    assert result.invoice.status is InvoiceStatus.draft


def test_an_invoice_without_lines_is_refused(gateway: StripeGateway) -> None:
    customer = gateway.ensure_customer("org-1", "owner@example.com", "Acme")
    with pytest.raises(GatewayError, match="no lines"):
        gateway.create_invoice(invoice_request("inv-1", customer.id, february_draft([0] * 28)))


def test_the_seat_price_is_a_plan_on_localstripe(gateway: StripeGateway, stripe_client: stripe.StripeClient) -> None:
    plan_id = gateway.ensure_seat_price(PROFESSIONAL)
    assert gateway.ensure_seat_price(PROFESSIONAL) == plan_id
    plan = stripe_client.v1.plans.retrieve(plan_id)
    assert (plan.amount, plan.currency, plan.interval) == (1000, "usd", "month")


def test_a_customer_is_read_back_until_it_is_deleted(
    gateway: StripeGateway, stripe_client: stripe.StripeClient
) -> None:
    customer = gateway.ensure_customer("org-1", "owner@example.com", "Acme")
    assert gateway.retrieve_customer(customer.id) == customer
    with_card = gateway.set_default_payment_method(customer.id, "pm_card_visa")
    assert gateway.retrieve_customer(customer.id) == with_card
    stripe_client.v1.customers.delete(customer.id)
    assert gateway.retrieve_customer(customer.id) is None


def test_a_customers_invoices_are_listed_with_their_status_and_amounts(
    gateway: StripeGateway, stripe_client: stripe.StripeClient
) -> None:
    customer = gateway.ensure_customer("org-1", "owner@example.com", "Acme")
    gateway.set_default_payment_method(customer.id, "pm_card_visa")
    february = gateway.create_invoice(invoice_request("inv-1", customer.id, february_draft()))
    gateway.pay_invoice(february.id, "inv-1", attempt=1)
    march = gateway.create_invoice(invoice_request("inv-2", customer.id, february_draft([1] * 28)))
    listed = {i.id: i for i in gateway.customer_invoices(customer.id)}
    assert listed[february.id] == gateway.retrieve_invoice(february.id)
    assert (listed[february.id].status, listed[february.id].amount_due) == (InvoiceStatus.paid, 3893)
    assert listed[march.id] == march and listed[march.id].invoice_key == "inv-2"
    assert set(listed) == {i.id for i in stripe_client.v1.invoices.list({"customer": customer.id}).data}


def test_a_payment_intent_names_the_invoice_it_pays(gateway: StripeGateway, stripe_client: stripe.StripeClient) -> None:
    customer = gateway.ensure_customer("org-1", "owner@example.com", "Acme")
    gateway.set_default_payment_method(customer.id, "pm_card_visa")
    invoice = gateway.create_invoice(invoice_request("inv-1", customer.id, february_draft()))
    gateway.pay_invoice(invoice.id, "inv-1", attempt=1)
    intent = stripe_client.v1.invoices.retrieve(invoice.id).to_dict()["payment_intent"]
    assert gateway.invoice_of_payment(intent) == invoice.id
    alone = stripe_client.v1.payment_intents.create({"amount": 500, "currency": "usd", "customer": customer.id})
    assert gateway.invoice_of_payment(alone.id) is None
