"""The billing API of an organization in its trial (started by the workers when its Professional workspace converged),
on localstripe: the view, adding a card (a declined one is a 402 with the issuer's message), bad payment method ids,
cancel and resume, invoices with their lines, who may do what, and another organization's billing as a 404."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
import pytest
import stripe
from fastapi.testclient import TestClient

from control_plane.core.authz import Role
from control_plane.core.clock import utcnow
from control_plane.workspaces.lifecycle import Lifecycle
from tests.billed_plane import BilledPlane
from tests.control_plane.conftest import Owner
from tests.control_plane.test_invitations import join
from tests.harness.localstripe import API_KEY, PUBLISHABLE_KEY

PROBLEM = "application/problem+json"


@dataclass
class Trial:
    """An organization in its trial: its workspace, its owner's email and token headers."""

    workspace_id: uuid.UUID
    organization_id: uuid.UUID
    owner_email: str
    owner: dict[str, str]

    def path(self, tail: str = "") -> str:
        return f"/api/v1/organizations/{self.organization_id}/billing{tail}"


def new_trial(billed: BilledPlane) -> Trial:
    slug = f"bill-{uuid.uuid4().hex[:8]}"
    workspace_id, organization_id = billed.professional_workspace(slug)
    return Trial(workspace_id, organization_id, f"{slug}.admin@example.com", billed.plane.owner_headers[workspace_id])


@pytest.fixture
def trial(billed: BilledPlane) -> Trial:
    """A new organization whose Professional workspace converged: its trial has started."""
    return new_trial(billed)


@pytest.fixture(scope="module")
def untouched(billed: BilledPlane) -> Trial:
    """An organization in its trial that only ever gets refused input (its card stays none)."""
    return new_trial(billed)


@pytest.fixture
def api(billed: BilledPlane) -> TestClient:
    return billed.plane.api


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["type"].endswith(f"/{slug}"), body
    return body


def add_card(api: TestClient, trial: Trial, payment_method_id: str, headers: dict[str, str] | None = None) -> Any:
    return api.post(trial.path("/card"), json={"payment_method_id": payment_method_id}, headers=headers or trial.owner)


def test_the_owner_sees_the_trial_adds_a_card_and_stripe_holds_it(
    billed: BilledPlane, trial: Trial, api: TestClient, stripe_client: stripe.StripeClient
) -> None:
    view = api.get(trial.path(), headers=trial.owner)
    assert view.status_code == 200, view.text
    body = view.json()
    assert (body["status"], body["card"], body["invoices"], body["cancel_at"]) == ("trialing", None, [], None)
    assert datetime.fromisoformat(body["trial_ends_at"]) > utcnow() + timedelta(days=13)
    assert body["publishable_key"] == PUBLISHABLE_KEY
    assert body["stripe_js_url"].endswith("/js.stripe.com/v3/")

    added = add_card(api, trial, "pm_card_visa")
    assert added.status_code == 200, added.text
    assert added.json()["card"] == {"brand": "visa", "last4": "4242"}
    assert api.get(trial.path(), headers=trial.owner).json()["card"] == {"brand": "visa", "last4": "4242"}
    assert API_KEY not in added.text + view.text

    # Stripe holds the customer of the organization with the card as its default payment method.
    customers = [
        c
        for c in stripe_client.v1.customers.list({"limit": 100}).data
        if c.metadata.to_dict().get("canopy_organization_id") == str(trial.organization_id)
    ]
    assert len(customers) == 1
    default = customers[0].invoice_settings.default_payment_method
    assert default is not None
    assert stripe_client.v1.payment_methods.retrieve(default).card.last4 == "4242"


def test_a_declined_card_is_a_402_with_the_issuers_message(trial: Trial, api: TestClient) -> None:
    declined = assert_problem(add_card(api, trial, "pm_card_visa_chargeDeclined"), 402, "card-declined")
    assert declined["detail"] == "Your card was declined."
    assert api.get(trial.path(), headers=trial.owner).json()["card"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"payment_method_id": "card_4242"},
        {"payment_method_id": "pm_"},
        {"payment_method_id": "pm_a b"},
        {"payment_method_id": "pm_a\nb"},
        {"payment_method_id": "pm_" + "a" * 201},
        {"payment_method_id": 4242},
        {"payment_method_id": None},
        {},
        {"payment_method_id": "pm_card_visa", "customer": "cus_other"},
    ],
)
def test_payment_method_ids_of_a_bad_shape_are_422(untouched: Trial, api: TestClient, body: dict[str, object]) -> None:
    assert_problem(api.post(untouched.path("/card"), json=body, headers=untouched.owner), 422, "invalid-input")
    assert api.get(untouched.path(), headers=untouched.owner).json()["card"] is None


def test_a_payment_method_stripe_does_not_know_is_422_and_changes_nothing(untouched: Trial, api: TestClient) -> None:
    unknown = assert_problem(add_card(api, untouched, "pm_doesnotexist123"), 422, "invalid-input")
    assert unknown["errors"][0]["field"] == "payment_method_id"
    not_json = api.post(untouched.path("/card"), content=b"pm_card_visa", headers=untouched.owner)
    assert not_json.status_code in (400, 422), not_json.text
    assert api.get(untouched.path(), headers=untouched.owner).json()["card"] is None


def test_a_trial_is_cancelled_at_its_end_and_resumed(trial: Trial, api: TestClient) -> None:
    cancelled = api.post(trial.path("/cancel"), headers=trial.owner)
    assert cancelled.status_code == 200, cancelled.text
    view = cancelled.json()
    assert view["status"] == "trialing"
    assert view["cancel_at"] == view["trial_ends_at"]  # a trial ends at its end
    assert_problem(api.post(trial.path("/cancel"), headers=trial.owner), 409, "already-canceled")

    resumed = api.post(trial.path("/resume"), headers=trial.owner)
    assert resumed.status_code == 200, resumed.text
    assert (resumed.json()["status"], resumed.json()["cancel_at"]) == ("trialing", None)
    assert_problem(api.post(trial.path("/resume"), headers=trial.owner), 409, "not-canceled")


def past_the_trial(billed: BilledPlane, trial: Trial, api: TestClient) -> None:
    """Move the clock past the trial's end and run the organization's billing as the periodic tick would."""
    trial_end = datetime.fromisoformat(api.get(trial.path(), headers=trial.owner).json()["trial_ends_at"])
    billed.advance(trial_end + timedelta(minutes=1) - utcnow())
    billed.bill(trial.organization_id)


def test_a_trial_cancelled_without_a_card_can_take_a_card_and_resume(
    billed: BilledPlane, trial: Trial, api: TestClient
) -> None:
    assert api.post(trial.path("/cancel"), headers=trial.owner).status_code == 200
    past_the_trial(billed, trial, api)
    assert api.get(trial.path(), headers=trial.owner).json()["status"] == "canceled"
    billed.settled(trial.workspace_id, Lifecycle.suspended)
    assert_problem(api.post(trial.path("/resume"), headers=trial.owner), 409, "card-required")

    carded = add_card(api, trial, "pm_card_visa")
    assert carded.status_code == 200, carded.text
    assert (carded.json()["status"], carded.json()["card"]["last4"]) == ("canceled", "4242")  # kept for resuming
    resumed = api.post(trial.path("/resume"), headers=trial.owner)
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["status"] == "active"
    billed.settled(trial.workspace_id, Lifecycle.active)


def test_a_card_added_to_a_suspended_workspace_reactivates_it_at_once(
    billed: BilledPlane, trial: Trial, api: TestClient
) -> None:
    past_the_trial(billed, trial, api)
    billed.settled(trial.workspace_id, Lifecycle.suspended)
    view = api.get(trial.path(), headers=trial.owner).json()
    assert (view["status"], view["suspended_at"] is not None) == ("unpaid", True)

    assert add_card(api, trial, "pm_card_visa").status_code == 200
    # No periodic billing runs here: the route asked the workers for the billing run, which reactivated it.
    billed.settled(trial.workspace_id, Lifecycle.active)
    view = api.get(trial.path(), headers=trial.owner).json()
    assert (view["status"], view["suspended_at"]) == ("active", None)


def test_a_paid_month_cancelled_gets_its_final_invoice_and_resuming_reactivates_it(
    billed: BilledPlane, trial: Trial, api: TestClient
) -> None:
    assert add_card(api, trial, "pm_card_visa").status_code == 200
    billed.collect_seats()
    past_the_trial(billed, trial, api)
    billed.settled(trial.workspace_id, Lifecycle.active)
    first_of_next_month = (utcnow().date().replace(day=28) + timedelta(days=4)).replace(day=1)
    cancelled = api.post(trial.path("/cancel"), headers=trial.owner).json()
    assert (cancelled["status"], cancelled["cancel_at"]) == ("active", f"{first_of_next_month.isoformat()}T00:00:00Z")

    billed.advance(datetime.combine(first_of_next_month, time(1), tzinfo=UTC) - utcnow())
    billed.bill(trial.organization_id)
    billed.settled(trial.workspace_id, Lifecycle.suspended)
    listed = api.get(trial.path("/invoices"), headers=trial.owner)
    assert listed.status_code == 200, listed.text
    (invoice,) = listed.json()
    assert invoice == api.get(trial.path(), headers=trial.owner).json()["invoices"][0]
    assert (invoice["state"], invoice["attempts"], invoice["final"], invoice["currency"]) == ("paid", 1, True, "usd")
    assert invoice["paid_at"] is not None and invoice["last_failure"] is None
    assert invoice["end_day"] == first_of_next_month.isoformat()
    assert invoice["period"] == invoice["first_day"][:7]
    (line,) = invoice["lines"]  # one seat (the owner) every billed day
    assert (line["seats"], line["unit_amount_cents"], line["first_day"]) == (1, 1000, invoice["first_day"])
    assert line["days"] == (first_of_next_month - date.fromisoformat(invoice["first_day"])).days
    assert invoice["amount_cents"] == line["amount_cents"] == round(1000 * line["days"] / line["days_in_period"])

    resumed = api.post(trial.path("/resume"), headers=trial.owner)
    assert resumed.status_code == 200, resumed.text
    assert (resumed.json()["status"], resumed.json()["cancel_at"]) == ("active", None)
    billed.settled(trial.workspace_id, Lifecycle.active)  # the route asked the workers to reconcile it


def test_another_organizations_billing_is_not_found(billed: BilledPlane, api: TestClient) -> None:
    mine, theirs = new_trial(billed), new_trial(billed)
    for method, tail in (("GET", ""), ("GET", "/invoices"), ("POST", "/cancel"), ("POST", "/resume")):
        assert_problem(api.request(method, theirs.path(tail), headers=mine.owner), 404, "not-found")
    assert_problem(add_card(api, theirs, "pm_card_visa", headers=mine.owner), 404, "not-found")
    untouched = api.get(theirs.path(), headers=theirs.owner).json()
    assert (untouched["card"], untouched["cancel_at"]) == (None, None)
    assert_problem(api.get(f"/api/v1/organizations/{uuid.uuid4()}/billing", headers=mine.owner), 404, "not-found")

    # An organization without self-serve billing (made by sales, no Professional workspace) has none to show.
    admin = billed.plane.staff_headers(Role.admin)
    org = api.post(
        "/api/v1/organizations", json={"name": "Contract Co", "owner_email": "cfo@contract.example"}, headers=admin
    )
    assert org.status_code == 201, org.text
    path = f"/api/v1/organizations/{org.json()['id']}/billing"
    assert_problem(api.get(path, headers=admin), 404, "billing-not-enabled")
    assert_problem(
        api.post(f"{path}/card", json={"payment_method_id": "pm_card_visa"}, headers=admin), 404, "billing-not-enabled"
    )


def test_owners_billing_members_and_admins_manage_support_reads_others_are_refused(
    billed: BilledPlane, trial: Trial, api: TestClient
) -> None:
    owner = Owner(trial.owner_email, str(trial.organization_id), {}, trial.owner)
    member = join(api, owner, role="billing")
    assert api.get(trial.path(), headers=member.headers).status_code == 200
    assert add_card(api, trial, "pm_card_visa", headers=member.headers).json()["card"]["last4"] == "4242"
    assert api.post(trial.path("/cancel"), headers=member.headers).status_code == 200
    assert api.post(trial.path("/resume"), headers=member.headers).status_code == 200

    admin = billed.plane.staff_headers(Role.admin)
    assert api.post(trial.path("/cancel"), headers=admin).status_code == 200
    assert api.post(trial.path("/resume"), headers=admin).status_code == 200

    support = billed.plane.staff_headers(Role.support)
    assert api.get(trial.path("/invoices"), headers=support).status_code == 200
    for tail in ("/cancel", "/resume"):
        assert_problem(api.post(trial.path(tail), headers=support), 403, "forbidden")
    assert_problem(add_card(api, trial, "pm_card_visa", headers=support), 403, "forbidden")
    for role in (Role.sales, Role.operator):
        assert_problem(api.get(trial.path(), headers=billed.plane.staff_headers(role)), 403, "forbidden")

    for headers in ({}, {"Authorization": "Bearer cnp_not-a-token"}, {"Authorization": "Basic eDp5"}):
        assert_problem(api.get(trial.path(), headers=headers), 401, "unauthorized")
        assert_problem(api.post(trial.path("/cancel"), headers=headers), 401, "unauthorized")
    assert api.get(trial.path(), headers=trial.owner).json()["cancel_at"] is None
