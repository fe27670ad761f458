"""``canopy contracts ...``: the contract actions at the console, as the API does them, printed as JSON.

The console acts as staff (actor ``cli``): whoever runs it holds the database's credentials already.
"""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import Callable
from datetime import date

from pydantic import BaseModel

from control_plane.contracts import repository, service, tasks
from control_plane.contracts.schemas import ContractCreate, ContractInvoiceOut, ContractOut, contract_detail
from control_plane.core.clock import utcnow
from control_plane.core.db import session_scope
from control_plane.core.problems import NotFound

ACTOR = "cli"


def _json(models: BaseModel | list[ContractOut] | list[ContractInvoiceOut]) -> str:
    if isinstance(models, BaseModel):
        return models.model_dump_json(indent=2)
    return json.dumps([model.model_dump(mode="json") for model in models], indent=2)


def create(args: argparse.Namespace) -> str:
    """Create a contract (its first annual invoice too, once started)."""
    body = ContractCreate(
        seats_purchased=args.seats,
        annual_price_per_seat_cents=args.annual_price_per_seat_cents,
        start_date=date.fromisoformat(args.start_date),
        payment_terms_days=args.payment_terms_days,
        billing_contact_email=args.billing_contact_email,
        billing_contact_name=args.billing_contact_name,
    )
    with session_scope() as session:
        contract = service.create_contract(session, ACTOR, args.organization_id, body, utcnow())
        session.commit()
        contract_id = contract.id
    tasks.run(contract_id)
    return _show(contract_id)


def _show(contract_id: uuid.UUID) -> str:
    with session_scope() as session:
        contract = repository.get(session, contract_id)
        if contract is None:
            raise NotFound("contract")
        return _json(contract_detail(service.view(session, contract)))


def show(args: argparse.Namespace) -> str:
    """One contract with its invoices, seats and licence."""
    return _show(args.contract_id)


def listing(_: argparse.Namespace) -> str:
    """Every contract."""
    with session_scope() as session:
        return _json([ContractOut.model_validate(row) for row in repository.listing(session, None)])


def renew(args: argparse.Namespace) -> str:
    """Renew for 12 months, then resend the plans."""
    with session_scope() as session:
        _, workspaces = service.renew(session, ACTOR, args.contract_id, utcnow())
    tasks.resend_plans(workspaces)
    tasks.run(args.contract_id)
    return _show(args.contract_id)


def record_payment(args: argparse.Namespace) -> str:
    """Record a bank transfer received for an invoice."""
    with session_scope() as session:
        invoice = service.record_payment(session, ACTOR, args.invoice_id, args.reference, utcnow())
        contract_id = invoice.contract_id
        out = ContractInvoiceOut.model_validate(invoice)
    tasks.run(contract_id)
    return _json(out)


def overdue(_: argparse.Namespace) -> str:
    """The unpaid invoices past their due date."""
    with session_scope() as session:
        rows = repository.invoice_listing(session, None, utcnow(), service.MAX_LIST)
        return _json([ContractInvoiceOut.model_validate(row) for row in rows])


def run(args: argparse.Namespace) -> str:
    """The contract run of every contract (or one) now."""
    if args.contract_id is not None:
        contract_ids = [args.contract_id]
    else:
        with session_scope() as session:
            contract_ids = repository.ids(session)
    done = {str(contract_id): tasks.run(contract_id) for contract_id in contract_ids}
    return json.dumps(
        {key: {"invoices_issued": o.invoices_issued, "notices_sent": o.notices_sent} for key, o in done.items()}
    )


COMMANDS: dict[str, Callable[[argparse.Namespace], str]] = {
    "create": create,
    "list": listing,
    "show": show,
    "renew": renew,
    "record-payment": record_payment,
    "overdue": overdue,
    "run": run,
}
