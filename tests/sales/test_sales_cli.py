"""``canopy sales``: create-customer prints the customer (owner invited, contract, Enterprise workspace waiting for
the owner) audited as ``cli``; customers lists it; bad input exits 2 and a taken address exits 1 with a problem."""

from __future__ import annotations

import contextlib
import io
import json
import uuid
from datetime import date
from typing import Any

from control_plane.audit.models import AuditEntry
from control_plane.cli import main as cli_main
from control_plane.core.db import session_scope


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli_main(["sales", *argv])
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def create(slug: str, *extra: str) -> tuple[int, str, str]:
    return run(
        "create-customer",
        *("--name", f"Acme {slug}", "--owner-email", f"owner@{slug}.example.com", "--seats", "10"),
        *("--price-cents", "12000", "--start-date", date.today().isoformat(), "--slug", slug),
        *("--billing-email", f"ap@{slug}.example.com", "--billing-name", "Accounts Payable", *extra),
    )


def test_create_customer_and_list(cp_database: str) -> None:
    slug = f"cli-{uuid.uuid4().hex[:6]}"
    code, out, err = create(slug)
    assert code == 0, err
    customer: dict[str, Any] = json.loads(out)
    assert customer["owner_email"] == f"owner@{slug}.example.com" and not customer["owner_has_signed_up"]
    assert customer["contract"]["seats_purchased"] == 10
    assert [(w["slug"], w["tier"]) for w in customer["workspaces"]] == [(slug, "enterprise")]
    with session_scope() as session:
        actors = {
            e.actor for e in session.query(AuditEntry).filter_by(organization_id=uuid.UUID(customer["organization_id"]))
        }
    assert actors == {"cli"}
    code, out, _ = run("customers")
    assert code == 0 and customer["organization_id"] in {c["organization_id"] for c in json.loads(out)}

    code, _, err = create(slug)
    assert code == 1 and json.loads(err)["status"] == 409
    code, _, err = create(f"cli-{uuid.uuid4().hex[:6]}", "--region", "Mars")
    assert code == 2 and "region" in err
