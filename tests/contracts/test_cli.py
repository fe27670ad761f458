"""``canopy contracts ...`` at the console: create, show, list, record a payment, list the overdue invoices,
renew and run, each printing JSON, as the API does them."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from control_plane.core.clock import utcnow
from control_plane.workspaces.models import Tier
from tests.billed_plane import BilledPlane

ROOT = Path(__file__).resolve().parents[2]


def canopy(billed: BilledPlane, *args: str) -> Any:
    """``canopy contracts <args>``; its JSON output."""
    argv = [sys.executable, "-m", "control_plane.cli", "contracts", *args]
    done = subprocess.run(argv, env=billed.plane.env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_contract_verbs_at_the_console(billed: BilledPlane) -> None:
    workspace_id = billed.plane.create_workspace("ctcli", tier=Tier.enterprise)
    org = billed.plane.row(workspace_id).organization_id
    created = canopy(
        billed,
        "create",
        f"--organization-id={org}",
        "--seats=7",
        "--annual-price-per-seat-cents=20000",
        f"--start-date={utcnow().date().isoformat()}",
        "--payment-terms-days=5",
        "--billing-contact-email=ap@ctcli.example",
        "--billing-contact-name=AP",
    )
    [invoice] = created["invoices"]
    assert (invoice["amount_cents"], invoice["state"]) == (140_000, "open")  # the run sent it to the gateway
    assert canopy(billed, "show", created["id"])["seats_purchased"] == 7
    assert created["id"] in [row["id"] for row in canopy(billed, "list")]
    billed.advance(timedelta(days=6))
    assert invoice["id"] in [row["id"] for row in canopy(billed, "overdue")]
    paid = canopy(billed, "record-payment", invoice["id"], "--reference=WIRE-CLI-1")
    assert (paid["state"], paid["payment_reference"]) == ("paid", "WIRE-CLI-1")
    assert invoice["id"] not in [row["id"] for row in canopy(billed, "overdue")]
    renewed = canopy(billed, "renew", created["id"])
    assert renewed["end_date"] > created["end_date"]
    assert sorted(row["contract_year"] for row in renewed["invoices"]) == [1, 2]
    ran = canopy(billed, "run", f"--contract-id={created['id']}")
    assert ran[created["id"]]["invoices_issued"] == 0

    refused = subprocess.run(
        [sys.executable, "-m", "control_plane.cli", "contracts", "renew", "00000000-0000-0000-0000-000000000000"],
        env=billed.plane.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 1 and "contract was not found" in refused.stderr
