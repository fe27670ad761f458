"""The payment gateway on Stripe, through the official SDK's ``StripeClient`` (``client.v1``).

Two dialects of the same calls (:class:`StripeApi`): Stripe itself, and localstripe (the emulator the tests
run), which lacks a few things the gateway works around:

- **Invoices.** Stripe: a draft invoice is created first (``pending_invoice_items_behavior=exclude``, our key
  in its metadata), our lines are added to it as invoice items, then it is finalized. localstripe cannot create
  an invoice for a customer without a subscription, drops invoice metadata at creation and ignores ``invoice=``
  on items: there each customer gets one subscription to a $0 "invoicing" Plan, our lines are created as pending
  invoice items (our key in their metadata, where the invoice is found again) that ``Invoice.create`` then sweeps
  in, and the invoice is paid from draft (no ``finalize_invoice``).
- **Catalog.** The seat price is a Price on Stripe (found by ``lookup_key``) and a legacy Plan on localstripe
  (no ``/v1/prices``), referenced from each line's metadata.
- **Idempotency.** localstripe ignores idempotency keys and Stripe forgets them after 24 hours, so every create
  first looks for what an interrupted call made (customers by e-mail and organization id, invoices and items by
  our invoice key) and only then creates, with a deterministic key (:func:`billing.gateway.idempotency_key`).
- **Invoices paid by transfer** (``days_until_due``: Enterprise contracts). Stripe: ``collection_method=send_invoice``
  with ``days_until_due``, finalized and sent (Stripe mails it), and ``paid_out_of_band`` once the transfer is
  recorded. localstripe 1.15 knows neither ``collection_method``, ``days_until_due``, ``send_invoice`` nor
  ``paid_out_of_band``: there the invoice is created as above (a draft holding our lines, which stands for the
  open invoice awaiting the transfer) and Canopy's own record of the payment is the one that says paid.
- **Failed charges.** Stripe raises a card error when paying fails; localstripe leaves the invoice ``open``
  without raising. Both end in a :class:`~billing.gateway.PaymentResult` read back from the invoice, with the
  failure message of its payment intent.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from typing import Any

import stripe

from billing.engine.pricing import SeatPrice
from billing.gateway import (
    Card,
    ChargeLine,
    Customer,
    GatewayError,
    GatewayInvoice,
    InvalidPaymentMethod,
    InvoiceRequest,
    InvoiceStatus,
    PaymentMethodDeclined,
    PaymentResult,
    amounts_match,
    idempotency_key,
    line_period,
)

ORGANIZATION_KEY = "canopy_organization_id"
INVOICE_KEY = "canopy_invoice_key"
LINE_KEY = "canopy_line_key"
PRICE_KEY = "canopy_price"
INVOICING_PLAN = "canopy-invoicing"  # localstripe only: the $0 plan of the subscription invoices hang on
PAGE = 100


class StripeApi(enum.StrEnum):
    """Which server the gateway talks to."""

    stripe = "stripe"
    localstripe = "localstripe"


class StripeGateway:
    """:class:`billing.gateway.PaymentGateway` on Stripe (or localstripe)."""

    def __init__(self, client: stripe.StripeClient, api: StripeApi = StripeApi.stripe) -> None:
        self._v1 = client.v1
        self._api = api

    # Catalog

    def ensure_seat_price(self, price: SeatPrice) -> str:
        """The id of the provider's recurring price for ``price`` (a Price, or a Plan on localstripe)."""
        lookup = f"canopy-{price.plan}-seat-{price.interval}-{price.unit_amount_cents}-{price.currency}"
        if self._api is StripeApi.localstripe:
            return self._ensure_plan(lookup, price.unit_amount_cents, price.currency, price.interval.value)
        found = self._v1.prices.list({"lookup_keys": [lookup], "limit": 1}).data
        if found:
            return str(found[0].id)
        product = self._ensure_product(f"canopy-{price.plan}", f"Canopy {price.plan.capitalize()}")
        params: Any = {
            "product": product,
            "currency": price.currency,
            "unit_amount": price.unit_amount_cents,
            "recurring": {"interval": price.interval.value, "usage_type": "licensed"},
            "lookup_key": lookup,
            "metadata": {PRICE_KEY: lookup},
        }
        created = self._v1.prices.create(params, {"idempotency_key": idempotency_key(f"price:{lookup}", "create")})
        return str(created.id)

    def _ensure_product(self, product_id: str, name: str) -> str:
        try:
            return str(self._v1.products.retrieve(product_id).id)
        except stripe.InvalidRequestError as e:
            if e.http_status != 404:
                raise
        params: Any = {"id": product_id, "name": name}
        return str(
            self._v1.products.create(params, {"idempotency_key": idempotency_key(f"product:{product_id}", "create")}).id
        )

    def _ensure_plan(self, plan_id: str, amount: int, currency: str, interval: str) -> str:
        try:
            return str(self._v1.plans.retrieve(plan_id).id)
        except stripe.InvalidRequestError as e:
            if e.http_status != 404:
                raise
        params: Any = {
            "id": plan_id,
            "amount": amount,
            "currency": currency,
            "interval": interval,
            "product": {"name": plan_id},
        }
        return str(self._v1.plans.create(params, {"idempotency_key": idempotency_key(f"plan:{plan_id}", "create")}).id)

    # Customers

    def ensure_customer(self, organization_id: str, email: str, name: str) -> Customer:
        """The organization's customer: found by e-mail and organization id, or created."""
        for found in self._v1.customers.list({"email": email, "limit": PAGE}).auto_paging_iter():
            if _metadata(found).get(ORGANIZATION_KEY) == organization_id:
                return _customer(found)
        params: Any = {"email": email, "name": name, "metadata": {ORGANIZATION_KEY: organization_id}}
        options: Any = {"idempotency_key": idempotency_key(f"organization:{organization_id}", "customer")}
        return _customer(self._v1.customers.create(params, options))

    def create_card_setup(self, organization_id: str, attempt: str) -> str:
        """A SetupIntent for a card charged off-session, which Stripe.js confirms with the card element
        (authenticating the card where its issuer asks); its client secret."""
        params: Any = {
            "usage": "off_session",
            "payment_method_types": ["card"],
            "metadata": {ORGANIZATION_KEY: organization_id},
        }
        key = idempotency_key(f"organization:{organization_id}:card-setup:{attempt}", "create")
        intent = self._v1.setup_intents.create(params, {"idempotency_key": key})
        if not intent.client_secret:
            raise GatewayError(f"setup intent {intent.id} has no client secret")
        return str(intent.client_secret)

    def set_default_payment_method(self, customer_id: str, payment_method_id: str) -> Customer:
        """Attach the payment method and make it the customer's default for invoices."""
        subject = f"customer:{customer_id}:payment-method:{payment_method_id}"
        try:
            attached = self._v1.payment_methods.attach(
                payment_method_id, {"customer": customer_id}, {"idempotency_key": idempotency_key(subject, "attach")}
            )
        except stripe.CardError as e:
            raise PaymentMethodDeclined(e.user_message or "The card was declined.") from e
        except stripe.InvalidRequestError as e:  # unknown, or attached to another customer
            raise InvalidPaymentMethod(f"payment method {payment_method_id} cannot be used: {e.code}") from e
        params: Any = {"invoice_settings": {"default_payment_method": attached.id}}
        updated = self._v1.customers.update(
            customer_id, params, {"idempotency_key": idempotency_key(subject, "default")}
        )
        return _customer(updated)

    def describe_card(self, payment_method_id: str) -> Card:
        """The card's brand and last four digits (nothing else of it is ever read)."""
        card = _optional(self._v1.payment_methods.retrieve(payment_method_id), "card") or {}
        return Card(payment_method_id, str(card.get("brand") or "card"), str(card.get("last4") or "")[-4:])

    # Invoices

    def create_invoice(self, request: InvoiceRequest) -> GatewayInvoice:
        """The invoice of ``request``, created once; an interrupted earlier call is found and completed."""
        if not request.lines:
            raise GatewayError(f"invoice {request.invoice_key} has no lines: nothing to collect")
        if self._api is StripeApi.localstripe:
            invoice = self._create_invoice_localstripe(request)
        else:
            invoice = self._create_invoice_stripe(request)
        if not amounts_match(request, invoice):
            raise GatewayError(
                f"invoice {invoice.id} holds {invoice.line_amounts} ({invoice.amount_due}), "
                f"not the {request.total_cents} of {request.invoice_key}"
            )
        return invoice

    def _create_invoice_stripe(self, request: InvoiceRequest) -> GatewayInvoice:
        raw = self._find_invoice(request.customer_id, request.invoice_key)
        if raw is None:
            params: Any = {
                "customer": request.customer_id,
                "currency": request.currency,
                "description": request.description,
                "auto_advance": False,
                "pending_invoice_items_behavior": "exclude",
                "metadata": {INVOICE_KEY: request.invoice_key},
                **_collection(request),
            }
            key = idempotency_key(f"invoice:{request.invoice_key}", "create")
            raw = self._v1.invoices.create(params, {"idempotency_key": key})
        if raw.status == InvoiceStatus.draft:
            present = {_metadata(line).get(LINE_KEY) for line in self._lines(str(raw.id))}
            for line in request.lines:
                if line.key not in present:
                    self._create_item(request, line, {"invoice": raw.id, "period": _period(line)})
            key = idempotency_key(f"invoice:{request.invoice_key}", "finalize")
            raw = self._v1.invoices.finalize_invoice(str(raw.id), {"auto_advance": False}, {"idempotency_key": key})
            if request.days_until_due is not None:  # mailed by Stripe with its bank transfer instructions
                key = idempotency_key(f"invoice:{request.invoice_key}", "send")
                raw = self._v1.invoices.send_invoice(str(raw.id), None, {"idempotency_key": key})
        return self._read(raw)

    def _create_invoice_localstripe(self, request: InvoiceRequest) -> GatewayInvoice:
        found = self._find_invoice(request.customer_id, request.invoice_key)
        if found is not None:
            return self._read(found)
        self._ensure_invoicing_subscription(request.customer_id, request.currency)
        pending = self._v1.invoice_items.list({"customer": request.customer_id, "limit": PAGE}).auto_paging_iter()
        present = set()
        for item in pending:
            if _metadata(item).get(INVOICE_KEY) != request.invoice_key:
                raise GatewayError(f"customer {request.customer_id} has a pending item of another invoice: {item.id}")
            present.add(_metadata(item).get(LINE_KEY))
        for line in request.lines:
            if line.key not in present:
                start, end = line_period(line)
                self._create_item(request, line, {"period_start": start, "period_end": end})
        params: Any = {"customer": request.customer_id, "description": request.description}
        key = idempotency_key(f"invoice:{request.invoice_key}", "create")
        return self._read(self._v1.invoices.create(params, {"idempotency_key": key}))

    def _ensure_invoicing_subscription(self, customer_id: str, currency: str) -> None:
        if self._v1.subscriptions.list({"customer": customer_id, "limit": 1}).data:
            return
        plan = self._ensure_plan(f"{INVOICING_PLAN}-{currency}", 0, currency, "month")
        params: Any = {"customer": customer_id, "items": [{"plan": plan}]}
        key = idempotency_key(f"customer:{customer_id}", "invoicing-subscription")
        self._v1.subscriptions.create(params, {"idempotency_key": key})

    def _create_item(self, request: InvoiceRequest, line: ChargeLine, placement: dict[str, Any]) -> None:
        params: Any = {
            "customer": request.customer_id,
            "amount": line.amount_cents,
            "currency": request.currency,
            "description": line.description,
            "metadata": {
                INVOICE_KEY: request.invoice_key,
                LINE_KEY: line.key,
                "seats": str(line.seats),
                "days": str(line.days),
                "unit_amount_cents": str(line.unit_amount_cents),
                **({PRICE_KEY: request.price_id} if request.price_id else {}),
            },
            **placement,
        }
        self._v1.invoice_items.create(params, {"idempotency_key": idempotency_key(f"line:{line.key}", "create")})

    def _find_invoice(self, customer_id: str, invoice_key: str) -> stripe.Invoice | None:
        listing = self._v1.invoices.list({"customer": customer_id, "limit": PAGE})
        for invoice in listing.auto_paging_iter():
            if _invoice_key(invoice) == invoice_key:
                return invoice
        return None

    def _lines(self, invoice_id: str) -> Iterator[stripe.InvoiceLineItem]:
        yield from self._v1.invoices.line_items.list(invoice_id, {"limit": PAGE}).auto_paging_iter()

    def pay_invoice(self, invoice_id: str, invoice_key: str, attempt: int) -> PaymentResult:
        """Charge the invoice to the customer's default payment method (a paid invoice is left alone)."""
        raw = self._v1.invoices.retrieve(invoice_id)
        if raw.status == InvoiceStatus.paid:
            return PaymentResult(self._read(raw), None)
        customer = _customer(self._v1.customers.retrieve(str(raw.customer)))
        if customer.default_payment_method is None:
            return PaymentResult(self._read(raw), "The customer has no default payment method.")
        failure: str | None = None
        try:
            key = idempotency_key(f"invoice:{invoice_key}", f"pay:{attempt}")
            raw = self._v1.invoices.pay(invoice_id, None, {"idempotency_key": key})
        except stripe.CardError as e:
            failure = e.user_message or "The card was declined."
            raw = self._v1.invoices.retrieve(invoice_id)
        invoice = self._read(raw)
        if invoice.status is not InvoiceStatus.paid and failure is None:
            failure = self._payment_failure(raw)
        return PaymentResult(invoice, failure)

    def mark_paid_out_of_band(self, invoice_id: str, invoice_key: str) -> GatewayInvoice:
        """Mark the invoice paid by a transfer received outside Stripe (``paid_out_of_band``). localstripe has no
        such payment: its invoice is left as it is (Canopy's record is the one that says paid)."""
        raw = self._v1.invoices.retrieve(invoice_id)
        if self._api is StripeApi.localstripe or raw.status != InvoiceStatus.open:
            return self._read(raw)
        key = idempotency_key(f"invoice:{invoice_key}", "paid-out-of-band")
        return self._read(self._v1.invoices.pay(invoice_id, {"paid_out_of_band": True}, {"idempotency_key": key}))

    def _payment_failure(self, raw: stripe.Invoice) -> str:
        intent_id = _optional(raw, "payment_intent")
        if isinstance(intent_id, str):
            error = _optional(self._v1.payment_intents.retrieve(intent_id), "last_payment_error") or {}
            if error.get("message"):
                return str(error["message"])
        return f"The invoice is {raw.status}, not paid."

    def retrieve_invoice(self, invoice_id: str) -> GatewayInvoice:
        """The invoice as Stripe holds it now."""
        return self._read(self._v1.invoices.retrieve(invoice_id))

    def customer_invoices(self, customer_id: str) -> Iterator[GatewayInvoice]:
        """Every invoice of the customer, newest first: one call per page of :data:`PAGE` (lines are read
        apart only for an invoice with more lines than its listing embeds)."""
        for raw in self._v1.invoices.list({"customer": customer_id, "limit": PAGE}).auto_paging_iter():
            yield self._read(raw)

    def _read(self, raw: stripe.Invoice) -> GatewayInvoice:
        embedded = _optional(raw, "lines")
        if embedded and not embedded.get("has_more"):
            lines = embedded.get("data", [])
            amounts = [int(line["amount"]) for line in lines if (line.get("metadata") or {}).get(LINE_KEY)]
        else:
            amounts = [int(line.amount) for line in self._lines(str(raw.id)) if _metadata(line).get(LINE_KEY)]
        return GatewayInvoice(
            id=str(raw.id),
            invoice_key=_invoice_key(raw),
            status=InvoiceStatus(str(raw.status)),
            currency=str(raw.currency),
            amount_due=int(raw.amount_due),
            amount_paid=int(raw.amount_paid),
            line_amounts=tuple(amounts),
        )

    # Reading back what happened at Stripe (webhooks, reconciliation)

    def retrieve_customer(self, customer_id: str) -> Customer | None:
        """The customer as Stripe holds it now; ``None`` once deleted (Stripe answers a stub, localstripe 404)."""
        try:
            raw = self._v1.customers.retrieve(customer_id)
        except stripe.InvalidRequestError as e:
            if e.http_status == 404:
                return None
            raise
        return None if _optional(raw, "deleted") else _customer(raw)

    def invoice_of_payment(self, payment_intent_id: str) -> str | None:
        """The invoice a payment intent pays: Stripe lists it among the invoice's payments (its payment intents
        no longer name their invoice); localstripe still names it on the payment intent."""
        if self._api is StripeApi.localstripe:
            invoice = _optional(self._v1.payment_intents.retrieve(payment_intent_id), "invoice")
            return str(invoice) if invoice else None
        params: Any = {"payment": {"type": "payment_intent", "payment_intent": payment_intent_id}, "limit": 1}
        found = self._v1.invoice_payments.list(params).data
        return _expandable_id(_optional(found[0], "invoice")) if found else None


def _optional(obj: Any, name: str) -> Any:
    """A field Stripe may leave out (SDK objects raise on missing attributes)."""
    return obj.to_dict().get(name) if hasattr(obj, "to_dict") else None


def _metadata(obj: Any) -> dict[str, str]:
    metadata = _optional(obj, "metadata")
    return dict(metadata) if metadata else {}


def _expandable_id(value: Any) -> str | None:
    """The id of a field Stripe gives as an id or, expanded, as the object."""
    if isinstance(value, dict):
        value = value.get("id")
    return str(value) if value else None


def _invoice_key(invoice: stripe.Invoice) -> str | None:
    """Our key of an invoice: in its metadata (Stripe), or in its lines' metadata (localstripe drops it at creation)."""
    key = _metadata(invoice).get(INVOICE_KEY)
    if key:
        return key
    lines = _optional(invoice, "lines")
    for line in (lines or {}).get("data", []):
        key = (line.get("metadata") or {}).get(INVOICE_KEY)
        if key:
            return str(key)
    return None


def _customer(raw: stripe.Customer) -> Customer:
    settings = _optional(raw, "invoice_settings") or {}
    return Customer(str(raw.id), _metadata(raw).get(ORGANIZATION_KEY, ""), settings.get("default_payment_method"))


def _collection(request: InvoiceRequest) -> dict[str, Any]:
    """Stripe's collection of the invoice: charged to the default card, or sent to be paid within the terms."""
    if request.days_until_due is None:
        return {"collection_method": "charge_automatically"}
    return {"collection_method": "send_invoice", "days_until_due": request.days_until_due}


def _period(line: ChargeLine) -> dict[str, int]:
    start, end = line_period(line)
    return {"start": start, "end": end}
