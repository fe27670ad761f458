"""The billing page of an organization, for its owners and billing members: status, card, invoices, and the card
form on Stripe.js (its card element; the card is confirmed with a SetupIntent, then added like the API adds it).

Another organization's billing page, or one of an organization without self-serve billing, is the 404 page. The
page's Content-Security-Policy allows the Stripe.js origin (scripts, frames, and the API it calls); no other page
does. The JSON endpoints of the card form take the page's CSRF token in their body.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from billing.engine.money import format_cents
from billing.engine.periods import period_of
from billing.engine.status import BillingStatus
from control_plane.accounts import repository as accounts_repo
from control_plane.accounts.models import Account
from control_plane.core.authz import GRANTS, Permission, Principal
from control_plane.core.deps import DbSession
from control_plane.core.problems import Problem
from control_plane.core.settings import Settings
from control_plane.organizations.models import Organization
from control_plane.subscriptions import actions, repository, service
from control_plane.subscriptions.models import Invoice, InvoiceState, Subscription
from control_plane.subscriptions.schemas import PaymentMethodId
from control_plane.web.rendering import content_security_policy
from control_plane.web.sessions import Viewer, login_redirect
from control_plane.web.views import FORM_EXPIRED, SettingsDep, form_token_ok, not_found, redirect, render

router = APIRouter(include_in_schema=False)

STRIPE_JS_ORIGIN = "https://js.stripe.com"
STRIPE_SOURCES: dict[str, tuple[str, ...]] = {  # what Stripe documents for Stripe.js and its Elements
    "script-src": (STRIPE_JS_ORIGIN, "https://*.js.stripe.com"),
    "frame-src": (STRIPE_JS_ORIGIN, "https://*.js.stripe.com", "https://hooks.stripe.com"),
    "connect-src": ("https://api.stripe.com",),
}
STATUS_LABELS = {
    BillingStatus.trialing: "Free trial",
    BillingStatus.active: "Active",
    BillingStatus.past_due: "Payment overdue",
    BillingStatus.unpaid: "Suspended: unpaid",
    BillingStatus.canceled: "Cancelled",
}
INVOICE_STATES = {InvoiceState.pending: "Being issued", InvoiceState.open: "Due", InvoiceState.paid: "Paid"}
JSON_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def billing_path(organization_id: uuid.UUID) -> str:
    """The billing page (the address billing mail and the workspace servers give)."""
    return f"/billing/{organization_id}"


def billing_paths(session: Session, viewer: Account) -> dict[uuid.UUID, str]:
    """The billing pages the viewer may open, by organization (those it manages that have self-serve billing)."""
    managed = [
        m.organization_id
        for m in accounts_repo.memberships(session, viewer.id)
        if m.role in GRANTS[Permission.manage_billing]
    ]
    return {org: billing_path(org) for org in managed if repository.get(session, org) is not None}


def stripe_sources(stripe_js_url: str) -> dict[str, tuple[str, ...]]:
    """The origins the page must allow for Stripe.js at ``stripe_js_url``: Stripe's documented ones, or for
    another server's Stripe.js (localstripe) that server's origin, which its script also calls."""
    parts = urlsplit(stripe_js_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    if origin == STRIPE_JS_ORIGIN:
        return STRIPE_SOURCES
    return {directive: (origin,) for directive in STRIPE_SOURCES}


def _principal(session: Session, viewer: Account, raw_id: str) -> Principal | None:
    """The viewer acting in the organization, when it manages that organization's billing."""
    try:
        organization_id = uuid.UUID(raw_id)
    except ValueError:
        return None
    role = accounts_repo.membership_role(session, viewer.id, organization_id)
    if role is None or role not in GRANTS[Permission.manage_billing]:
        return None
    return Principal(account_id=viewer.id, role=role, organization_id=organization_id)


def _subscription(session: Session, viewer: Account, raw_id: str) -> tuple[Principal, Subscription] | None:
    principal = _principal(session, viewer, raw_id)
    if principal is None or principal.organization_id is None:
        return None
    try:
        return principal, actions.subscription(session, principal, principal.organization_id)
    except Problem:
        return None


@dataclass(frozen=True)
class InvoiceRow:
    """One invoice as the page shows it."""

    id: uuid.UUID
    period: str
    amount: str
    state: str
    state_key: str
    failure: str | None
    lines: list[str]


def _invoice_row(invoice: Invoice) -> InvoiceRow:
    lines = []
    for line in invoice.lines:
        seats = "seat" if line["seats"] == 1 else "seats"
        days = "day" if line["days"] == 1 else "days"
        lines.append(
            f"{line['seats']} {seats} x {line['days']} {days} from {line['first_day']}: "
            f"{format_cents(int(line['amount_cents']), invoice.currency)}"
        )
    return InvoiceRow(
        id=invoice.id,
        period=f"{period_of(invoice.first_day).start:%B %Y}" + (" (final)" if invoice.final else ""),
        amount=format_cents(invoice.amount_cents, invoice.currency),
        state=INVOICE_STATES[invoice.state],
        state_key=invoice.state.value,
        failure=invoice.last_failure if invoice.state is not InvoiceState.paid else None,
        lines=lines,
    )


def _page(
    request: Request,
    session: Session,
    settings: Settings,
    viewer: Account,
    organization_id: uuid.UUID,
    *,
    alert: str | None = None,
    status_code: int = 200,
) -> Response:
    summary = service.summary(session, organization_id)
    sub = summary.subscription
    organization = session.get(Organization, organization_id)
    context = {
        "organization": organization,
        "sub": sub,
        "status": sub.status.value,
        "status_label": STATUS_LABELS[sub.status],
        "invoices": [_invoice_row(invoice) for invoice in summary.invoices],
        "failure": next((i.last_failure for i in summary.invoices if i.state is InvoiceState.open), None),
        "page_url": billing_path(organization_id),
        "stripe_js_url": settings.stripe_js_url,
        "publishable_key": settings.stripe_publishable_key,
        "attempt": uuid.uuid4(),
        "alert": alert,
    }
    csp = content_security_policy(stripe_sources(settings.stripe_js_url))
    return render(
        request,
        settings,
        "billing.html",
        context,
        viewer=viewer,
        form=True,
        status_code=status_code,
        headers={"Content-Security-Policy": csp},
    )


@router.get("/billing/{organization_id}")
def billing_page(
    organization_id: str, request: Request, session: DbSession, settings: SettingsDep, viewer: Viewer
) -> Response:
    """The organization's billing: status, card on file, invoices, the card form, cancel and resume."""
    if viewer is None:
        return login_redirect(request.url.path)
    found = _subscription(session, viewer, organization_id)
    if found is None:
        return not_found(request, settings, viewer)
    return _page(request, session, settings, viewer, found[1].organization_id)


class _PageForm(BaseModel):
    csrf_token: str = Field(max_length=200)


class CardSetupBody(_PageForm):
    """The card form asks for a SetupIntent for one card entry (``attempt``: the page's)."""

    attempt: uuid.UUID


class CardBody(_PageForm):
    """The payment method Stripe.js confirmed."""

    payment_method_id: PaymentMethodId


def _json_refusal(
    request: Request, session: Session, settings: Settings, viewer: Account | None, organization_id: str, token: str
) -> JSONResponse | Principal:
    """The principal acting on the card form, or the JSON answer refusing it."""
    if viewer is None:
        return JSONResponse({"error": "Your session ended: sign in again."}, status_code=401, headers=JSON_HEADERS)
    found = _subscription(session, viewer, organization_id)
    if found is None:
        return JSONResponse({"error": "Not found."}, status_code=404, headers=JSON_HEADERS)
    if not form_token_ok(request, settings, token):
        return JSONResponse({"error": FORM_EXPIRED}, status_code=403, headers=JSON_HEADERS)
    return found[0]


def _problem_json(problem: Problem) -> JSONResponse:
    return JSONResponse({"error": problem.detail or problem.title}, status_code=problem.status, headers=JSON_HEADERS)


def _card_form_action(
    request: Request,
    session: Session,
    settings: Settings,
    viewer: Account | None,
    organization_id: str,
    csrf_token: str,
    act: Callable[[Principal, uuid.UUID], dict[str, str]],
) -> Response:
    """Run a card form's JSON action for the signed-in member (refusals and problems as ``{"error": ...}``)."""
    principal = _json_refusal(request, session, settings, viewer, organization_id, csrf_token)
    if isinstance(principal, JSONResponse):
        return principal
    assert principal.organization_id is not None
    try:
        return JSONResponse(act(principal, principal.organization_id), headers=JSON_HEADERS)
    except Problem as problem:
        return _problem_json(problem)


@router.post("/billing/{organization_id}/card-setup")
def card_setup(
    organization_id: str,
    body: CardSetupBody,
    request: Request,
    session: DbSession,
    settings: SettingsDep,
    viewer: Viewer,
) -> Response:
    """The client secret Stripe.js confirms the card element's card with."""

    def act(_: Principal, org: uuid.UUID) -> dict[str, str]:
        return {"client_secret": actions.card_setup_secret(settings, org, body.attempt)}

    return _card_form_action(request, session, settings, viewer, organization_id, body.csrf_token, act)


@router.post("/billing/{organization_id}/card")
def add_card(
    organization_id: str,
    body: CardBody,
    request: Request,
    session: DbSession,
    settings: SettingsDep,
    viewer: Viewer,
) -> Response:
    """Make the confirmed card the organization's (a declined card is a 402 with the issuer's message)."""

    def act(principal: Principal, org: uuid.UUID) -> dict[str, str]:
        actions.add_card(session, settings, principal, org, body.payment_method_id)
        return {"next": billing_path(org)}

    return _card_form_action(request, session, settings, viewer, organization_id, body.csrf_token, act)


def _form_action(
    request: Request,
    session: Session,
    settings: Settings,
    viewer: Account | None,
    organization_id: str,
    csrf_token: str,
    act: Callable[[Session, Principal, uuid.UUID], None],
) -> Response:
    """Cancel or resume from the page's forms, then back to the page (with the reason when refused)."""
    if viewer is None:
        return login_redirect(f"/billing/{organization_id}")
    found = _subscription(session, viewer, organization_id)
    if found is None:
        return not_found(request, settings, viewer)
    principal, sub = found
    if not form_token_ok(request, settings, csrf_token):
        return _page(request, session, settings, viewer, sub.organization_id, alert=FORM_EXPIRED, status_code=403)
    try:
        act(session, principal, sub.organization_id)
    except Problem as problem:
        session.rollback()
        detail = problem.detail or problem.title
        return _page(request, session, settings, viewer, sub.organization_id, alert=detail, status_code=problem.status)
    return redirect(billing_path(sub.organization_id))


@router.post("/billing/{organization_id}/cancel")
def cancel(
    organization_id: str,
    request: Request,
    session: DbSession,
    settings: SettingsDep,
    viewer: Viewer,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Cancel at the end of the period (the trial's end during a trial)."""
    return _form_action(request, session, settings, viewer, organization_id, csrf_token, actions.cancel)


@router.post("/billing/{organization_id}/resume")
def resume(
    organization_id: str,
    request: Request,
    session: DbSession,
    settings: SettingsDep,
    viewer: Viewer,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Withdraw the cancellation, or resubscribe (needs a card)."""
    return _form_action(request, session, settings, viewer, organization_id, csrf_token, actions.resume)
