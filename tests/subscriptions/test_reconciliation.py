"""The nightly comparison of Stripe with Canopy, against localstripe: no drift while both agree; what is changed at
Stripe behind Canopy's back (the default card, an invoice voided there, an invoice Canopy never made, a customer
deleted) is reported, recorded, audited and shown on ``/metrics``.

Organizations are billed through product paths (tests/subscriptions/stripe_side.py); Stripe is changed through the
SDK. No webhook endpoint is registered here, so a change made at Stripe stays a disagreement until compared.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import stripe
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from control_plane.audit.models import AuditEntry
from control_plane.core.db import session_scope
from control_plane.core.task_queue import app, ensure_sync_open
from control_plane.subscriptions.event_tasks import RECONCILE_TASK
from control_plane.subscriptions.models import BillingReconciliation
from control_plane.subscriptions.reconciliation import ACTOR, Report, reconcile_billing
from tests.billed_plane import BilledPlane, _workers_end_with_their_test  # noqa: F401
from tests.harness.localstripe import API_KEY
from tests.subscriptions.stripe_side import FAILING_CARD, GOOD_CARD, Billed, billed_organization, card, first_invoice
from tests.waiting import wait_until

pytestmark = pytest.mark.slow


def kinds(report: Report, organization: Billed) -> list[str]:
    """The kinds of drift the report found for one organization."""
    return sorted(d.kind for d in report.drift if d.organization_id == organization.organization_id)


def change_default_card(stripe_client: stripe.StripeClient, customer_id: str) -> str:
    """A new card made the customer's default in Stripe's dashboard."""
    payment_method = card(stripe_client, GOOD_CARD)
    stripe_client.v1.payment_methods.attach(payment_method, {"customer": customer_id})
    params: Any = {"invoice_settings": {"default_payment_method": payment_method}}
    stripe_client.v1.customers.update(customer_id, params)
    return payment_method


def drift_audited(organization: Billed) -> list[dict[str, Any]]:
    """The reconciliation's audit entries about the organization."""
    with session_scope() as session:
        query = select(AuditEntry).where(
            AuditEntry.organization_id == organization.organization_id, AuditEntry.actor == ACTOR
        )
        return [dict(entry.after or {}, action=entry.action) for entry in session.scalars(query)]


def test_no_drift_while_stripe_and_canopy_agree(billed: BilledPlane, stripe_client: stripe.StripeClient) -> None:
    paying = billed_organization(billed, stripe_client, "agreepaid", GOOD_CARD)
    failing = billed_organization(billed, stripe_client, "agreeopen", FAILING_CARD)
    assert first_invoice(billed, paying).state.value == "paid"
    assert first_invoice(billed, failing).state.value == "open"

    report = reconcile_billing()
    assert (kinds(report, paying), kinds(report, failing)) == ([], [])
    assert report.organizations >= 2
    with session_scope() as session:
        latest = session.scalars(select(BillingReconciliation).order_by(BillingReconciliation.id.desc())).first()
        assert latest is not None and latest.ran_at == report.ran_at
        assert latest.organizations == report.organizations and len(latest.drift) == len(report.drift)
    assert drift_audited(paying) == drift_audited(failing) == []


def test_changes_made_at_stripe_are_reported_and_audited(
    billed: BilledPlane,
    stripe_client: stripe.StripeClient,
) -> None:
    paying = billed_organization(billed, stripe_client, "driftpaid", GOOD_CARD)
    failing = billed_organization(billed, stripe_client, "driftopen", FAILING_CARD)
    first_invoice(billed, paying)
    voided = first_invoice(billed, failing)

    change_default_card(stripe_client, paying.customer_id)
    item: Any = {"customer": paying.customer_id, "amount": 1234, "currency": "usd", "description": "made at Stripe"}
    stripe_client.v1.invoice_items.create(item)
    unknown = stripe_client.v1.invoices.create({"customer": paying.customer_id})
    stripe_client.v1.invoices.void_invoice(str(voided.gateway_invoice_id))

    report = reconcile_billing()
    assert kinds(report, paying) == ["invoice-unknown", "payment-method"]
    assert kinds(report, failing) == ["invoice-status"]
    details = {
        d.kind: d.detail for d in report.drift if d.organization_id in (paying.organization_id, failing.organization_id)
    }
    assert unknown.id in details["invoice-unknown"] and "1234 cents" in details["invoice-unknown"]
    assert (
        f"{voided.gateway_invoice_id} ({voided.period}) is void at Stripe, open at Canopy" in details["invoice-status"]
    )
    audited = drift_audited(paying) + drift_audited(failing)
    assert sorted(entry["kind"] for entry in audited) == ["invoice-status", "invoice-unknown", "payment-method"]
    assert {entry["action"] for entry in audited} == {"billing.drift_found"}
    assert not [entry for entry in audited if API_KEY in str(entry) or "whsec_" in str(entry)]

    stripe_client.v1.customers.delete(paying.customer_id)
    assert kinds(reconcile_billing(), paying) == ["customer-missing"]


def metric(plane_api: Callable[[str], str], name: str) -> float:
    """The value of a gauge on ``/metrics``."""
    [family] = [f for f in text_string_to_metric_families(plane_api("/metrics")) if f.name == name]
    return float(family.samples[0].value)


def test_the_nightly_job_records_its_run_and_metrics_show_it(
    billed: BilledPlane,
    stripe_client: stripe.StripeClient,
) -> None:
    drifting = billed_organization(billed, stripe_client, "nightly", GOOD_CARD)  # in its trial, with a card
    change_default_card(stripe_client, drifting.customer_id)
    with session_scope() as session:
        before = session.scalar(select(func.max(BillingReconciliation.id))) or 0

    ensure_sync_open()
    app.configure_task(name=RECONCILE_TASK).defer(timestamp=0)

    def latest() -> BillingReconciliation | None:
        with session_scope() as session:
            query = select(BillingReconciliation).where(BillingReconciliation.id > before)
            return session.scalars(query.order_by(BillingReconciliation.id.desc())).first()

    wait_until("the worker's reconciliation", lambda: latest() is not None, timeout=60)
    run = latest()
    assert run is not None
    assert {"organization_id": str(drifting.organization_id), "kind": "payment-method"}.items() <= next(
        d for d in run.drift if d["organization_id"] == str(drifting.organization_id)
    ).items()

    def scrape(path: str) -> str:
        return billed.plane.api.get(path).text

    assert metric(scrape, "canopy_billing_drift") == len(run.drift) >= 1
    assert metric(scrape, "canopy_billing_reconciliation_timestamp_seconds") == run.ran_at.timestamp()
