"""Enterprise contract routes under /api/v1 (thin: parse, authorize, act)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from control_plane.contracts import service, tasks
from control_plane.contracts.auth import ContractManager, ContractReader, PaymentRecorder
from control_plane.contracts.models import Contract
from control_plane.contracts.schemas import (
    ContractCreateIn,
    ContractDetail,
    ContractInvoiceOut,
    ContractOut,
    PaymentIn,
    contract_detail,
)
from control_plane.core.clock import utcnow
from control_plane.core.deps import DbSession
from control_plane.core.problems import problem_responses

router = APIRouter(prefix="/api/v1", tags=["contracts"], responses=problem_responses(401, 403))


def _detail(session: Session, contract: Contract) -> ContractDetail:
    return contract_detail(service.view(session, contract))


@router.post("/contracts", status_code=201, response_model=ContractDetail, responses=problem_responses(404, 409))
def create_contract(body: ContractCreateIn, session: DbSession, principal: ContractManager) -> ContractDetail:
    """Give an organization its 12-month Enterprise contract (sales, admin); the first annual invoice is issued
    at its start, payable by bank transfer within the payment terms."""
    contract = service.create(session, principal, body.organization_id, body)
    session.commit()
    tasks.defer_run(contract.id)
    return _detail(session, contract)


@router.get("/contracts", response_model=list[ContractOut])
def list_contracts(session: DbSession, principal: ContractReader) -> list[ContractOut]:
    """The contracts the caller may see, newest first (customers: their own)."""
    return [ContractOut.model_validate(contract) for contract in service.listing(session, principal)]


@router.get("/contracts/{contract_id}", response_model=ContractDetail, responses=problem_responses(404))
def get_contract(contract_id: uuid.UUID, session: DbSession, principal: ContractReader) -> ContractDetail:
    """A contract with its invoices, seats used against seats purchased, and its licence's dates and phase."""
    return _detail(session, service.visible(session, principal, contract_id))


@router.post("/contracts/{contract_id}/renewal", response_model=ContractDetail, responses=problem_responses(404))
def renew_contract(contract_id: uuid.UUID, session: DbSession, principal: ContractManager) -> ContractDetail:
    """Renew for 12 more months (sales, admin): the next annual invoice is issued and the licence is active again
    (a read-only workspace can post again once its plan is resent)."""
    service.visible(session, principal, contract_id)
    contract, workspaces = service.renew(session, principal.actor, contract_id, utcnow())
    tasks.resend_plans(workspaces)
    tasks.defer_run(contract.id)
    return _detail(session, contract)


@router.get("/contract-invoices", response_model=list[ContractInvoiceOut])
def list_invoices(
    session: DbSession,
    principal: ContractReader,
    overdue: Annotated[bool, Query(description="only the unpaid invoices past their due date")] = False,
) -> list[ContractInvoiceOut]:
    """Contract invoices the caller may see, earliest due first."""
    rows = service.invoices(session, principal, overdue=overdue)
    return [ContractInvoiceOut.model_validate(row) for row in rows]


@router.post(
    "/contract-invoices/{invoice_id}/payment",
    response_model=ContractInvoiceOut,
    responses=problem_responses(404, 409),
)
def record_payment(
    invoice_id: uuid.UUID, body: PaymentIn, session: DbSession, principal: PaymentRecorder
) -> ContractInvoiceOut:
    """Record a bank transfer received for the invoice (finance, admin); the gateway is told where it can be."""
    invoice = service.record_payment(session, principal.actor, invoice_id, body.reference, utcnow())
    tasks.defer_run(invoice.contract_id)
    return ContractInvoiceOut.model_validate(invoice)
