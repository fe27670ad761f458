"""The ``canopy sales`` verbs: sales staff at the console create and read Enterprise customers through the same
service as the API (audit actor ``cli``), JSON out. Exit codes: 0 done, 1 refused (the problem on stderr), 2 bad
usage."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from dataclasses import dataclass
from datetime import date

from control_plane.core.authz import Principal, Role

CONSOLE_ACCOUNT = uuid.UUID(int=0)


@dataclass(frozen=True)
class ConsolePrincipal(Principal):
    """Whoever runs the CLI (it reaches the database directly): acts as an admin, audited as ``cli``."""

    @property
    def actor(self) -> str:
        """How audit entries name the console."""
        return "cli"


def cmd_sales(args: argparse.Namespace) -> int:
    """``canopy sales create-customer`` and ``canopy sales customers``."""
    from pydantic import ValidationError

    import control_plane.core.all_models  # noqa: F401  (every table, so foreign keys resolve)
    from control_plane.contracts import tasks as contract_tasks
    from control_plane.core.db import session_scope
    from control_plane.core.problems import Problem
    from control_plane.reconciler.queue import Cause, defer_reconcile
    from control_plane.sales import service
    from control_plane.sales.schemas import CustomerCreate

    console = ConsolePrincipal(account_id=CONSOLE_ACCOUNT, role=Role.admin, organization_id=None)
    try:
        with session_scope() as session:
            if args.sales_command == "customers":
                shown = [c.model_dump(mode="json") for c in service.customers(session, console)]
                print(json.dumps(shown, indent=2))
                return 0
            made = service.create_customer(session, console, CustomerCreate.model_validate(_customer_body(args)))
            session.commit()
            shown_one = service.customer(session, console, made.organization_id).model_dump(mode="json")
    except ValidationError as exc:
        print(json.dumps(exc.errors(include_url=False, include_context=False), default=str), file=sys.stderr)
        return 2
    except Problem as exc:
        print(json.dumps(exc.body("canopy sales")), file=sys.stderr)
        return 1
    defer_reconcile(made.workspace_id, Cause.signup)
    contract_tasks.defer_run(made.contract_id)
    print(json.dumps(shown_one, indent=2))
    return 0


def _customer_body(args: argparse.Namespace) -> dict[str, object]:
    return {
        "name": args.name,
        "owner_email": args.owner_email,
        "contract": {
            "seats_purchased": args.seats,
            "annual_price_per_seat_cents": args.price_cents,
            "start_date": args.start_date,
            "payment_terms_days": args.payment_terms_days,
            "billing_contact_email": args.billing_email,
            "billing_contact_name": args.billing_name,
        },
        "workspace": {"slug": args.slug, "display_name": args.display_name, "region": args.region},
    }


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``canopy sales`` and its verbs."""
    verbs = sub.add_parser("sales", help="Enterprise customers (JSON out)").add_subparsers(
        dest="sales_command", required=True
    )
    verbs.add_parser("customers", help="every Enterprise customer with contract and workspaces").set_defaults(
        func=cmd_sales
    )
    create = verbs.add_parser("create-customer", help="organization, owner invitation, contract and silo workspace")
    create.add_argument("--name", required=True, help="the organization's name")
    create.add_argument("--owner-email", required=True, help="the customer's owner (mailed an invitation)")
    create.add_argument("--seats", type=int, required=True, help="seats purchased")
    create.add_argument("--price-cents", type=int, required=True, help="annual price per seat, in cents")
    create.add_argument("--start-date", type=date.fromisoformat, required=True, help="YYYY-MM-DD")
    create.add_argument("--payment-terms-days", type=int, default=30)
    create.add_argument("--billing-email", required=True, help="the billing contact's email")
    create.add_argument("--billing-name", required=True, help="the billing contact's name")
    create.add_argument("--slug", required=True, help="the workspace's address")
    create.add_argument("--display-name", help="the workspace's name")
    create.add_argument("--region", help="where its silo goes (default: the deployment's region)")
    create.set_defaults(func=cmd_sales)
