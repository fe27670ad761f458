"""Sales routes under /api/v1/sales (thin: parse, authorize, call the service)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from control_plane.contracts import tasks as contract_tasks
from control_plane.core.deps import DbSession, IdempotencyKey
from control_plane.core.idempotency import run_once
from control_plane.core.problems import problem_responses
from control_plane.reconciler.queue import Cause, defer_reconcile
from control_plane.sales import service
from control_plane.sales.auth import CustomerCreator, CustomerReader
from control_plane.sales.schemas import CustomerCreate, CustomerOut

router = APIRouter(prefix="/api/v1/sales", tags=["sales"], responses=problem_responses(401, 403))


@router.post("/customers", status_code=201, response_model=CustomerOut, responses=problem_responses(409, 422, 503))
def create_customer(
    body: CustomerCreate, session: DbSession, principal: CustomerCreator, key: IdempotencyKey
) -> JSONResponse:
    """Create an Enterprise customer in one transaction (sales, admin): the organization, its owner (mailed an
    invitation that sets their password), the contract with its first annual invoice, and the Enterprise workspace,
    which starts provisioning and gets the owner as its first system admin once they have set their password."""

    def create() -> tuple[int, object]:
        made = service.create_customer(session, principal, body)
        out = service.customer(session, principal, made.organization_id)
        return 201, out.model_dump(mode="json")

    outcome = run_once(session, f"sales:{principal.account_id}", key, body.model_dump(mode="json"), create)
    if not outcome.replayed:
        for ws in outcome.body["workspaces"]:
            defer_reconcile(uuid.UUID(ws["id"]), Cause.signup)
        contract_tasks.defer_run(uuid.UUID(outcome.body["contract"]["id"]))
    return JSONResponse(outcome.body, status_code=outcome.status_code)


@router.get("/customers", response_model=list[CustomerOut])
def list_customers(session: DbSession, principal: CustomerReader) -> list[CustomerOut]:
    """Enterprise customers the caller may see, newest first, with contract, seats, invoices, licence dates and
    their workspaces' provisioning conditions."""
    return service.customers(session, principal)


@router.get("/customers/{organization_id}", response_model=CustomerOut, responses=problem_responses(404))
def get_customer(organization_id: uuid.UUID, session: DbSession, principal: CustomerReader) -> CustomerOut:
    """One customer."""
    return service.customer(session, principal, organization_id)
