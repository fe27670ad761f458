"""SQL of Enterprise contracts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from control_plane.contracts.models import Contract, ContractInvoice, ContractInvoiceState, ContractNotice
from control_plane.subscriptions.models import SeatSnapshot, SnapshotReason
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Tier, Workspace


def get(session: Session, contract_id: uuid.UUID, *, for_update: bool = False) -> Contract | None:
    """One contract (row-locked with ``for_update``)."""
    return session.get(Contract, contract_id, with_for_update=for_update)


def of_organization(session: Session, organization_id: uuid.UUID) -> Contract | None:
    """The organization's contract."""
    return session.scalars(select(Contract).where(Contract.organization_id == organization_id)).one_or_none()


def listing(session: Session, organization_id: uuid.UUID | None) -> Sequence[Contract]:
    """Every contract (of one organization, if given), newest first."""
    query = select(Contract).order_by(Contract.created_at.desc(), Contract.id)
    if organization_id is not None:
        query = query.where(Contract.organization_id == organization_id)
    return session.scalars(query).all()


def ids(session: Session) -> list[uuid.UUID]:
    """Every contract's id."""
    return list(session.scalars(select(Contract.id).order_by(Contract.id)))


def invoices(session: Session, contract_id: uuid.UUID) -> Sequence[ContractInvoice]:
    """The contract's invoices, newest first."""
    query = (
        select(ContractInvoice)
        .where(ContractInvoice.contract_id == contract_id)
        .order_by(ContractInvoice.contract_year.desc(), ContractInvoice.quarter.desc(), ContractInvoice.kind)
    )
    return session.scalars(query).all()


def invoice(session: Session, invoice_id: uuid.UUID, *, for_update: bool = False) -> ContractInvoice | None:
    """One invoice (row-locked with ``for_update``)."""
    return session.get(ContractInvoice, invoice_id, with_for_update=for_update)


def invoice_by_gateway_id(session: Session, gateway_invoice_id: str) -> ContractInvoice | None:
    """The invoice the gateway holds as ``gateway_invoice_id``, row-locked."""
    query = select(ContractInvoice).where(ContractInvoice.gateway_invoice_id == gateway_invoice_id)
    return session.scalars(query.with_for_update()).one_or_none()


def add_invoice(session: Session, values: dict[str, Any]) -> uuid.UUID | None:
    """Insert an invoice unless the contract already has that kind, year and quarter; its id if inserted."""
    statement = insert(ContractInvoice).values(values).on_conflict_do_nothing().returning(ContractInvoice.id)
    return session.scalar(statement)


def has_invoice(session: Session, contract_id: uuid.UUID, kind: str, year: int, quarter: int) -> bool:
    """Whether the contract has that invoice already."""
    query = select(ContractInvoice.id).where(
        ContractInvoice.contract_id == contract_id,
        ContractInvoice.kind == kind,
        ContractInvoice.contract_year == year,
        ContractInvoice.quarter == quarter,
    )
    return session.scalar(query) is not None


def unpaid(session: Session, contract_id: uuid.UUID, due_by: datetime | None = None) -> list[ContractInvoice]:
    """The contract's invoices not paid yet (due at or before ``due_by``), earliest due first."""
    query = select(ContractInvoice).where(
        ContractInvoice.contract_id == contract_id, ContractInvoice.state != ContractInvoiceState.paid
    )
    if due_by is not None:
        query = query.where(ContractInvoice.due_at <= due_by)
    return list(session.scalars(query.order_by(ContractInvoice.due_at, ContractInvoice.id)))


def invoice_listing(
    session: Session, organization_id: uuid.UUID | None, overdue_at: datetime | None, limit: int
) -> list[ContractInvoice]:
    """Invoices (of one organization's contract; only those unpaid past due at ``overdue_at``), earliest due first."""
    query = select(ContractInvoice).join(Contract, Contract.id == ContractInvoice.contract_id)
    if organization_id is not None:
        query = query.where(Contract.organization_id == organization_id)
    if overdue_at is not None:
        query = query.where(ContractInvoice.state != ContractInvoiceState.paid, ContractInvoice.due_at < overdue_at)
    return list(session.scalars(query.order_by(ContractInvoice.due_at, ContractInvoice.id).limit(limit)))


def unsettled_at_gateway(session: Session, contract_id: uuid.UUID) -> list[ContractInvoice]:
    """Invoices paid here that the gateway holds but has not been told of."""
    query = select(ContractInvoice).where(
        ContractInvoice.contract_id == contract_id,
        ContractInvoice.state == ContractInvoiceState.paid,
        ContractInvoice.gateway_invoice_id.is_not(None),
        ContractInvoice.gateway_settled.is_(False),
    )
    return list(session.scalars(query))


def claim_notice(session: Session, contract_id: uuid.UUID, key: str, now: datetime) -> bool:
    """Record notice ``key`` as sent; False if it was already."""
    statement = (
        insert(ContractNotice)
        .values(contract_id=contract_id, key=key, sent_at=now)
        .on_conflict_do_nothing()
        .returning(ContractNotice.key)
    )
    return session.scalar(statement) is not None


def _enterprise(organization_id: uuid.UUID) -> Any:
    return (Workspace.organization_id == organization_id) & (Workspace.tier == Tier.enterprise)


def enterprise_workspaces(session: Session, organization_id: uuid.UUID) -> list[uuid.UUID]:
    """The organization's Enterprise workspaces that are not deleted."""
    query = select(Workspace.id).where(_enterprise(organization_id), Workspace.lifecycle_state != Lifecycle.deleted)
    return list(session.scalars(query))


def daily_seats(session: Session, organization_id: uuid.UUID, first: date, end: date) -> list[tuple[date, int]]:
    """Per day from ``first`` to ``end`` (exclusive): the seats of the organization's Enterprise workspaces, the sum
    of their daily snapshots."""
    query = (
        select(SeatSnapshot.day, func.sum(SeatSnapshot.seats))
        .join(Workspace, Workspace.id == SeatSnapshot.workspace_id)
        .where(
            _enterprise(organization_id),
            SeatSnapshot.reason == SnapshotReason.daily,
            SeatSnapshot.day >= first,
            SeatSnapshot.day < end,
        )
        .group_by(SeatSnapshot.day)
    )
    return [(day, int(seats)) for day, seats in session.execute(query)]


def seats_in_use(session: Session, organization_id: uuid.UUID) -> int:
    """The seats of the organization's Enterprise workspaces on the latest day counted."""
    latest = (
        select(func.max(SeatSnapshot.day))
        .join(Workspace, Workspace.id == SeatSnapshot.workspace_id)
        .where(_enterprise(organization_id), SeatSnapshot.reason == SnapshotReason.daily)
        .scalar_subquery()
    )
    query = (
        select(func.coalesce(func.sum(SeatSnapshot.seats), 0))
        .join(Workspace, Workspace.id == SeatSnapshot.workspace_id)
        .where(
            _enterprise(organization_id),
            SeatSnapshot.reason == SnapshotReason.daily,
            SeatSnapshot.day == latest,
        )
    )
    return int(session.scalar(query) or 0)
