"""procrastinate tasks of Enterprise contracts: the periodic contract tick and the run of one contract (never two
at once: its procrastinate ``lock``)."""

from __future__ import annotations

import uuid

from control_plane.contracts import repository
from control_plane.contracts.run import ContractRunOutcome, run_contract
from control_plane.core.db import session_scope
from control_plane.core.settings import get_settings
from control_plane.core.task_queue import app, defer_once, every
from control_plane.reconciler.queue import Cause, defer_reconcile

RUN_TASK = "run_contract"
TICK_TASK = "contract_tick"

_settings_at_import = get_settings()


def run(contract_id: uuid.UUID) -> ContractRunOutcome:
    """The contract run at the clock's now, then the reconciles its licence changes ask for."""
    outcome = run_contract(contract_id)
    resend_plans(outcome.reconcile)
    return outcome


def resend_plans(workspace_ids: list[uuid.UUID]) -> None:
    """Reconcile the workspaces so that the ``plan`` step tells their servers the licence."""
    for workspace_id in workspace_ids:
        defer_reconcile(workspace_id, Cause.billing)


def defer_run(contract_id: uuid.UUID) -> None:
    """Ask the workers for the contract's run now (deduplicated while one is waiting)."""
    lock = f"contract:{contract_id}"
    defer_once(RUN_TASK, lock, lock=lock, contract_id=str(contract_id))


@app.task(name=RUN_TASK, pass_context=False)
def run_contract_task(contract_id: str) -> str:
    """procrastinate entry point of :func:`run`."""
    outcome = run(uuid.UUID(contract_id))
    return f"invoices {outcome.invoices_issued}, notices {outcome.notices_sent}"


@app.task(name=TICK_TASK, queueing_lock=TICK_TASK, pass_context=False)
def contract_tick(timestamp: int) -> int:
    """Defer the run of every contract (each finds what is due, if anything)."""
    with session_scope() as session:
        contract_ids = repository.ids(session)
    for contract_id in contract_ids:
        defer_run(contract_id)
    return len(contract_ids)


# Periodic with the billing run unless configured to 0 (then operators and tests run it: ``canopy contracts run``).
if _settings_at_import.billing_run_seconds > 0:
    app.periodic(cron=every(_settings_at_import.billing_run_seconds), periodic_id=TICK_TASK)(contract_tick)
