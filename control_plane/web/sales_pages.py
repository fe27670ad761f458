"""The sales console: ``/sales`` lists Enterprise customers, ``/sales/customers/new`` creates one (organization,
owner invitation, contract, silo workspace), ``/sales/customers/{id}`` shows its contract, invoices (overdue ones
flagged), licence dates, seats used against purchased, and its workspace provisioning step by step, live.

Sales and admins create customers and renew contracts; finance and admins record payments; finance sees the rest.
Any other signed-in account gets the 404 page, except on the creation form, where it is refused with a 403 page
(only sales and admins create Enterprise workspaces); without a session the browser is sent to sign in.
"""

from __future__ import annotations

import uuid
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from control_plane.accounts.models import Account
from control_plane.contracts import service as contracts
from control_plane.contracts import tasks as contract_tasks
from control_plane.core.authz import Permission, Principal
from control_plane.core.clock import utcnow
from control_plane.core.deps import DbSession
from control_plane.core.problems import Problem
from control_plane.core.settings import Settings
from control_plane.reconciler.queue import Cause, defer_reconcile
from control_plane.sales import service
from control_plane.sales.auth import console_principal, may
from control_plane.sales.schemas import CustomerCreate
from control_plane.web.console import JSON_HEADERS
from control_plane.web.progress import progress_of, steps_of
from control_plane.web.sessions import Viewer, login_redirect
from control_plane.web.views import FORM_EXPIRED, SettingsDep, form_token_ok, message, not_found, redirect, render
from control_plane.workspaces import repository as workspaces_repo
from control_plane.workspaces.models import Tier

router = APIRouter(include_in_schema=False)

HOME = "/sales"
NEW = "/sales/customers/new"
FIELDS = (
    "name",
    "owner_email",
    "seats_purchased",
    "annual_price",
    "start_date",
    "payment_terms_days",
    "billing_contact_email",
    "billing_contact_name",
    "slug",
    "display_name",
    "region",
)
FORM_FIELD = {"annual_price_per_seat_cents": "annual_price"}
Text = Annotated[str, Form(max_length=400)]


def customer_path(organization_id: uuid.UUID) -> str:
    """A customer's page."""
    return f"/sales/customers/{organization_id}"


def _console(request: Request, settings: Settings, viewer: Account | None, path: str) -> Principal | Response:
    """The viewer acting in the console; else sign in first (no session) or the 404 page."""
    if viewer is None:
        return login_redirect(path)
    principal = console_principal(viewer.staff_role, viewer.id)
    return not_found(request, settings, viewer) if principal is None else principal


def _creator(request: Request, settings: Settings, viewer: Account | None) -> Principal | Response:
    """The viewer as a creator of Enterprise customers; else sign in first, or a 403 page saying who may."""
    if viewer is None:
        return login_redirect(NEW)
    principal = console_principal(viewer.staff_role, viewer.id)
    if principal is None or not may(principal, Permission.create_enterprise_workspace):
        text = "Only sales and admins create Enterprise customers and workspaces."
        return message(request, settings, "Not allowed", text, viewer=viewer, status_code=403)
    return principal


@router.get(HOME)
def customers_page(request: Request, session: DbSession, settings: SettingsDep, viewer: Viewer) -> Response:
    """Every Enterprise customer with seats, licence dates and workspace states."""
    principal = _console(request, settings, viewer, HOME)
    if isinstance(principal, Response):
        return principal
    context = {
        "customers": service.customers(session, principal),
        "may_create": may(principal, Permission.create_enterprise_workspace),
        "overdue": contracts.invoices(session, principal, overdue=True),
    }
    return render(request, settings, "sales.html", context, viewer=viewer)


def _form_page(
    request: Request,
    settings: Settings,
    viewer: Account | None,
    values: dict[str, str],
    *,
    errors: dict[str, str] | None = None,
    alert: str | None = None,
    status_code: int = 200,
) -> Response:
    context = {"values": values, "errors": errors or {}, "alert": alert, "action": NEW}
    return render(request, settings, "sales_new.html", context, viewer=viewer, form=True, status_code=status_code)


@router.get(NEW)
def new_customer_page(request: Request, settings: SettingsDep, viewer: Viewer) -> Response:
    """The form creating a customer, its contract and its Enterprise workspace."""
    principal = _creator(request, settings, viewer)
    if isinstance(principal, Response):
        return principal
    values = dict.fromkeys(FIELDS, "") | {"payment_terms_days": "30", "start_date": utcnow().date().isoformat()}
    return _form_page(request, settings, viewer, values)


def _cents(text: str) -> int | str:
    """Dollars as typed (``1200`` or ``1200.50``) in cents, or the text back when it is no amount."""
    try:
        amount = Decimal(text.strip())
    except InvalidOperation:
        return text
    cents = amount * 100
    return int(cents) if amount.is_finite() and cents == cents.to_integral_value() else text


def _body(values: dict[str, str]) -> dict[str, Any]:
    return {
        "name": values["name"],
        "owner_email": values["owner_email"],
        "contract": {
            "seats_purchased": values["seats_purchased"],
            "annual_price_per_seat_cents": _cents(values["annual_price"]),
            "start_date": values["start_date"],
            "payment_terms_days": values["payment_terms_days"],
            "billing_contact_email": values["billing_contact_email"],
            "billing_contact_name": values["billing_contact_name"],
        },
        "workspace": {
            "slug": values["slug"],
            "display_name": values["display_name"] or None,
            "region": values["region"] or None,
        },
    }


def _field_errors(exc: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for error in exc.errors(include_url=False):
        field = str(error["loc"][-1]) if error["loc"] else "name"
        errors.setdefault(FORM_FIELD.get(field, field), str(error["msg"]))
    return errors


@router.post(NEW)
def create_customer(
    request: Request,
    session: DbSession,
    settings: SettingsDep,
    viewer: Viewer,
    name: Text = "",
    owner_email: Text = "",
    seats_purchased: Text = "",
    annual_price: Text = "",
    start_date: Text = "",
    payment_terms_days: Text = "",
    billing_contact_email: Text = "",
    billing_contact_name: Text = "",
    slug: Text = "",
    display_name: Text = "",
    region: Text = "",
    csrf_token: Text = "",
) -> Response:
    """Create the customer (one transaction), start its workspace's provisioning, then show its page."""
    principal = _creator(request, settings, viewer)
    if isinstance(principal, Response):
        return principal
    typed = (
        name,
        owner_email,
        seats_purchased,
        annual_price,
        start_date,
        payment_terms_days,
        billing_contact_email,
        billing_contact_name,
        slug,
        display_name,
        region,
    )
    values = {field: value.strip() for field, value in zip(FIELDS, typed, strict=True)}
    if not form_token_ok(request, settings, csrf_token):
        return _form_page(request, settings, viewer, values, alert=FORM_EXPIRED, status_code=403)
    try:
        made = service.create_customer(session, principal, CustomerCreate.model_validate(_body(values)))
        session.commit()
    except ValidationError as exc:
        return _form_page(request, settings, viewer, values, errors=_field_errors(exc), status_code=422)
    except Problem as exc:
        session.rollback()
        field = str(exc.extra.get("field") or "")
        errors = {"slug" if field == "organization_id" else field: exc.detail} if field else None
        alert = None if errors else exc.detail
        return _form_page(request, settings, viewer, values, errors=errors, alert=alert, status_code=exc.status)
    defer_reconcile(made.workspace_id, Cause.signup)
    contract_tasks.defer_run(made.contract_id)
    return redirect(customer_path(made.organization_id))


def _customer_context(session: Session, settings: Settings, principal: Principal, raw_id: str) -> dict[str, Any] | None:
    try:
        organization_id = uuid.UUID(raw_id)
        customer = service.customer(session, principal, organization_id)
    except (ValueError, Problem):
        return None
    now = utcnow()
    silo = next((ws for ws in reversed(customer.workspaces) if ws.tier == Tier.enterprise), None)
    row = workspaces_repo.get(session, silo.id) if silo else None
    return {
        "customer": customer,
        "now": now,
        "progress": progress_of(row, settings.base_domain, steps_of(row, settings.provider)) if row else None,
        "silo": silo,
        "status_url": f"/sales/workspaces/{silo.id}/status" if silo else "",
        "may_renew": may(principal, Permission.manage_contracts),
        "may_record_payment": may(principal, Permission.record_payments),
    }


@router.get("/sales/customers/{organization_id}")
def customer_page(
    organization_id: str, request: Request, session: DbSession, settings: SettingsDep, viewer: Viewer
) -> Response:
    """One customer: owner, contract, invoices, licence, seats, and its workspace's provisioning live."""
    principal = _console(request, settings, viewer, request.url.path)
    if isinstance(principal, Response):
        return principal
    context = _customer_context(session, settings, principal, organization_id)
    if context is None:
        return not_found(request, settings, viewer)
    return render(request, settings, "sales_customer.html", context, viewer=viewer)


@router.get("/sales/workspaces/{workspace_id}/status")
def workspace_status(workspace_id: str, session: DbSession, settings: SettingsDep, viewer: Viewer) -> Response:
    """A customer workspace's provisioning as JSON, for the customer page's polling (console roles only)."""
    principal = console_principal(viewer.staff_role, viewer.id) if viewer else None
    try:
        ws = workspaces_repo.get(session, uuid.UUID(workspace_id)) if principal else None
    except ValueError:
        ws = None
    if ws is None:
        return JSONResponse({"error": "not found"}, status_code=404, headers=JSON_HEADERS)
    body = progress_of(ws, settings.base_domain, steps_of(ws, settings.provider)).as_json()
    body["ready_url"] = None
    return JSONResponse(body, headers=JSON_HEADERS)


@router.post("/sales/customers/{organization_id}/renewal")
def renew(
    organization_id: str,
    request: Request,
    session: DbSession,
    settings: SettingsDep,
    viewer: Viewer,
    csrf_token: Text = "",
) -> Response:
    """Renew the customer's contract for 12 months (sales, admins): next annual invoice, licence active again."""
    principal = _console(request, settings, viewer, request.url.path)
    if isinstance(principal, Response):
        return principal
    context = _customer_context(session, settings, principal, organization_id)
    if context is None or not may(principal, Permission.manage_contracts) or context["customer"].contract is None:
        return not_found(request, settings, viewer)
    if not form_token_ok(request, settings, csrf_token):
        return message(request, settings, "Please try again", FORM_EXPIRED, viewer=viewer, status_code=403)
    contract, workspaces = contracts.renew(session, principal.actor, context["customer"].contract.id, utcnow())
    contract_tasks.resend_plans(workspaces)
    contract_tasks.defer_run(contract.id)
    return redirect(customer_path(contract.organization_id))


@router.post("/sales/customers/{organization_id}/invoices/{invoice_id}/payment")
def record_payment(
    organization_id: str,
    invoice_id: str,
    request: Request,
    session: DbSession,
    settings: SettingsDep,
    viewer: Viewer,
    reference: Annotated[str, Form(max_length=200)] = "",
    csrf_token: Text = "",
) -> Response:
    """Record a bank transfer paying one of the customer's invoices (finance, admins)."""
    principal = _console(request, settings, viewer, request.url.path)
    if isinstance(principal, Response):
        return principal
    context = _customer_context(session, settings, principal, organization_id)
    contract = context["customer"].contract if context else None
    invoice = next((i for i in contract.invoices if str(i.id) == invoice_id), None) if contract else None
    if invoice is None or not may(principal, Permission.record_payments):
        return not_found(request, settings, viewer)
    if not form_token_ok(request, settings, csrf_token):
        return message(request, settings, "Please try again", FORM_EXPIRED, viewer=viewer, status_code=403)
    if not reference.strip():
        text = "Give the payment's reference (the bank transfer's)."
        return message(request, settings, "No payment reference", text, viewer=viewer, status_code=422)
    try:
        contracts.record_payment(session, principal.actor, invoice.id, reference.strip(), utcnow())
    except Problem as exc:
        return message(request, settings, exc.title, exc.detail, viewer=viewer, status_code=exc.status)
    assert context is not None
    return redirect(customer_path(context["customer"].organization_id))
