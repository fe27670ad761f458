"""The contract run: everything due on one contract at the clock's now, idempotent (run it any number of times).

1. under the contract's row lock: the annual invoice of each contract year begun, the true-forward of each ended
   quarter 1..3 (the seats purchased rise to the peak in the same transaction); committed;
2. the licence notice of the current phase (60, 30, 7 days before the end, grace, read-only) and a mail about each
   invoice past due, each once; a newly entered grace or read-only phase asks for the reconcile of the
   organization's Enterprise workspaces (their servers are told the licence); committed;
3. where billing is on, the new invoices go to the gateway and recorded payments are told to it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from billing.engine.contracts import LicencePhase, notice_due
from control_plane.contracts import collection, issuing, notices, repository
from control_plane.core.clock import utcnow
from control_plane.core.db import session_scope
from control_plane.core.settings import get_settings
from control_plane.subscriptions.gateway import billing_enabled

PLAN_CHANGES = frozenset({LicencePhase.grace, LicencePhase.read_only})


@dataclass
class ContractRunOutcome:
    """What one run did: invoices issued, notices sent, the workspaces whose plan must be resent."""

    invoices_issued: int = 0
    notices_sent: int = 0
    at_gateway: int = 0
    reconcile: list[uuid.UUID] = field(default_factory=list)


def run_contract(contract_id: uuid.UUID, now: datetime | None = None) -> ContractRunOutcome:
    """Do what is due on the contract at ``now`` (the clock's now by default)."""
    now = now or utcnow()
    outcome = ContractRunOutcome()
    _issue(contract_id, now, outcome)
    _notify(contract_id, now, outcome)
    settings = get_settings()
    if billing_enabled(settings):
        outcome.at_gateway = collection.push(settings, contract_id, now)
    return outcome


def _issue(contract_id: uuid.UUID, now: datetime, outcome: ContractRunOutcome) -> None:
    with session_scope() as session:
        contract = repository.get(session, contract_id, for_update=True)
        if contract is not None:
            outcome.invoices_issued = issuing.issue_due_annual(session, contract, now)
            outcome.invoices_issued += issuing.issue_due_true_forwards(session, contract, now)


def _notify(contract_id: uuid.UUID, now: datetime, outcome: ContractRunOutcome) -> None:
    with session_scope() as session:
        contract = repository.get(session, contract_id, for_update=True)
        if contract is None:
            return
        phase = notice_due(contract.end_date, now)
        if phase is not None and notices.licence(session, contract, phase, now):
            outcome.notices_sent += 1
            if phase in PLAN_CHANGES:
                outcome.reconcile = repository.enterprise_workspaces(session, contract.organization_id)
        for invoice in repository.unpaid(session, contract_id, due_by=now):
            outcome.notices_sent += notices.overdue(session, contract, invoice, now)
