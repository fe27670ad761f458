"""What sales, finance and customers ask of Enterprise contracts: create and renew a contract, record a payment,
read contracts and invoices, and the licence terms each Enterprise workspace server is told."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from billing.engine.contracts import LicencePhase, grace_end, licence_phase, midnight, term_end, years_of
from control_plane.audit import service as audit
from control_plane.contracts import issuing, repository
from control_plane.contracts.models import Contract, ContractInvoice, ContractInvoiceState
from control_plane.contracts.schemas import ContractCreate
from control_plane.core.authz import Permission, Principal
from control_plane.core.clock import utcnow
from control_plane.core.problems import Conflict, NotFound
from control_plane.core.settings import Settings
from control_plane.organizations.models import Organization

MAX_LIST = 500


def create(session: Session, principal: Principal, organization_id: uuid.UUID, body: ContractCreate) -> Contract:
    """The organization's contract and, once it has started, its first annual invoice (not committed; audited
    ``contract.create``). 403 unless the caller may manage contracts; 409 ``contract-exists``."""
    principal.require(Permission.manage_contracts)
    return create_contract(session, principal.actor, organization_id, body, utcnow())


def create_contract(
    session: Session, actor: str, organization_id: uuid.UUID, body: ContractCreate, now: datetime
) -> Contract:
    """:func:`create` for a caller already authorized (the console's CLI)."""
    if session.get(Organization, organization_id) is None:
        raise NotFound("organization")
    values = body.model_dump(exclude={"organization_id"})
    contract: Contract | None = session.scalar(
        insert(Contract)
        .values(
            id=uuid.uuid4(),
            organization_id=organization_id,
            end_date=term_end(body.start_date, 1),
            created_at=now,
            updated_at=now,
            **values,
        )
        .on_conflict_do_nothing(index_elements=[Contract.organization_id])
        .returning(Contract)
    )
    if contract is None:
        raise Conflict("contract-exists", "The organization already has a contract; renew it instead")
    issuing.issue_due_annual(session, contract, now)
    audit.record(
        session,
        actor=actor,
        action="contract.create",
        target_type="contract",
        target_id=contract.id,
        organization_id=organization_id,
        after=_audited(contract),
    )
    return contract


def _audited(contract: Contract) -> dict[str, object]:
    return {
        "seats_purchased": contract.seats_purchased,
        "annual_price_per_seat_cents": contract.annual_price_per_seat_cents,
        "start_date": contract.start_date.isoformat(),
        "end_date": contract.end_date.isoformat(),
        "payment_terms_days": contract.payment_terms_days,
    }


def for_organization(session: Session, organization_id: uuid.UUID) -> Contract | None:
    """The organization's contract, if it has one."""
    return repository.of_organization(session, organization_id)


def licence_terms(session: Session, settings: Settings, organization_id: uuid.UUID) -> dict[str, object] | None:
    """The ``licence`` of the plan of the organization's Enterprise workspaces (``None`` without a contract):
    read-only from the grace's end until a renewal, by the control plane's clock."""
    contract = repository.of_organization(session, organization_id)
    organization = session.get(Organization, organization_id)
    if contract is None or organization is None:
        return None
    return {
        "sku": "enterprise",
        "company": organization.name,
        "users": contract.seats_purchased,
        "starts_at": _millis(midnight(contract.start_date)),
        "expires_at": _millis(midnight(contract.end_date)),
        "grace_ends_at": _millis(grace_end(contract.end_date)),
        "read_only": licence_phase(contract.end_date, utcnow()) is LicencePhase.read_only,
    }


def _millis(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def visible(session: Session, principal: Principal, contract_id: uuid.UUID) -> Contract:
    """The contract, if the caller may see it (another organization's is a 404)."""
    contract = repository.get(session, contract_id)
    if contract is None or not principal.can_see(contract.organization_id):
        raise NotFound("contract")
    return contract


def listing(session: Session, principal: Principal) -> list[Contract]:
    """The contracts the caller may see: every one for staff, their own organization's for customers."""
    organization_id = None if principal.is_staff else principal.organization_id
    return list(repository.listing(session, organization_id))


def invoices(session: Session, principal: Principal, *, overdue: bool) -> list[ContractInvoice]:
    """The invoices the caller may see, earliest due first (with ``overdue``: unpaid past their due date)."""
    organization_id = None if principal.is_staff else principal.organization_id
    return repository.invoice_listing(session, organization_id, utcnow() if overdue else None, MAX_LIST)


@dataclass(frozen=True)
class ContractView:
    """A contract with its invoices, the seats in use and its licence phase."""

    contract: Contract
    invoices: list[ContractInvoice]
    seats_used: int
    phase: LicencePhase


def view(session: Session, contract: Contract) -> ContractView:
    """Where the contract stands now."""
    return ContractView(
        contract,
        list(repository.invoices(session, contract.id)),
        repository.seats_in_use(session, contract.organization_id),
        licence_phase(contract.end_date, utcnow()),
    )


def renew(session: Session, actor: str, contract_id: uuid.UUID, now: datetime) -> tuple[Contract, list[uuid.UUID]]:
    """Extend the contract by 12 months and issue the new year's annual invoice (committed; audited
    ``contract.renew``): the licence is active again. Returns the contract and the workspaces whose plan
    must be resent."""
    contract = repository.get(session, contract_id, for_update=True)
    if contract is None:
        raise NotFound("contract")
    before = _audited(contract)
    years = years_of(contract.start_date, contract.end_date) + 1
    contract.end_date = term_end(contract.start_date, years)
    contract.updated_at = now
    issuing.issue_annual(session, contract, years, now)
    audit.record(
        session,
        actor=actor,
        action="contract.renew",
        target_type="contract",
        target_id=contract.id,
        organization_id=contract.organization_id,
        before=before,
        after=_audited(contract),
    )
    workspaces = repository.enterprise_workspaces(session, contract.organization_id)
    session.commit()
    return contract, workspaces


def record_payment(
    session: Session, actor: str, invoice_id: uuid.UUID, reference: str, now: datetime
) -> ContractInvoice:
    """Record that the invoice is paid (committed; audited ``contract_invoice.paid``); the next contract run tells
    the gateway. Recording the same payment again changes nothing; another one for a paid invoice is a 409."""
    invoice = repository.invoice(session, invoice_id, for_update=True)
    if invoice is None:
        raise NotFound("invoice")
    if invoice.state is ContractInvoiceState.paid:
        if invoice.payment_reference == reference:
            return invoice
        raise Conflict("invoice-paid", "The invoice is already paid under another reference")
    mark_paid(session, invoice, actor, reference, now)
    session.commit()
    return invoice


def mark_paid(session: Session, invoice: ContractInvoice, actor: str, reference: str, now: datetime) -> None:
    """Make the (row-locked) invoice paid with ``reference``, audited, in the caller's transaction."""
    invoice.state = ContractInvoiceState.paid
    invoice.paid_at = now
    invoice.payment_reference = reference
    contract = repository.get(session, invoice.contract_id)
    audit.record(
        session,
        actor=actor,
        action="contract_invoice.paid",
        target_type="contract_invoice",
        target_id=invoice.id,
        organization_id=contract.organization_id if contract is not None else None,
        after={"amount_cents": invoice.amount_cents, "payment_reference": reference},
    )
