"""Expiry without renewal, on the control plane's clock: notices 60, 30 and 7 days ahead, the grace, then the
plan's licence read-only (and the workspaces reconciled to tell their servers); renewal makes it writable again and
issues the next annual invoice exactly once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from control_plane.audit.models import AuditEntry
from control_plane.contracts.models import ContractInvoice
from control_plane.core.authz import Role
from control_plane.core.clock import utcnow
from control_plane.core.db import session_scope
from control_plane.core.settings import get_settings
from control_plane.subscriptions.service import workspace_plan
from control_plane.workspaces.models import Tier, Workspace
from tests.billed_plane import BilledPlane
from tests.contracts.conftest import contract_run, subjects_to


def plan_licence(workspace_id: uuid.UUID) -> dict[str, object]:
    with session_scope() as session:
        ws = session.get(Workspace, workspace_id)
        assert ws is not None
        licence = workspace_plan(session, get_settings(), ws)["licence"]
        assert isinstance(licence, dict)
        return licence


def test_notices_grace_read_only_and_renewal(billed: BilledPlane) -> None:
    plane = billed.plane
    workspace_id = plane.create_workspace("ctlicence", tier=Tier.enterprise)
    org = plane.row(workspace_id).organization_id
    sales = plane.staff_headers(Role.sales)
    contact = "licences@licensee.example"
    body = {
        "organization_id": str(org),
        "seats_purchased": 10,
        "annual_price_per_seat_cents": 9_900,
        "start_date": utcnow().date().isoformat(),
        "billing_contact_email": contact,
        "billing_contact_name": "Licensee AP",
    }
    contract = plane.api.post("/api/v1/contracts", json=body, headers=sales).json()
    contract_id = uuid.UUID(contract["id"])
    ends_at = datetime.fromisoformat(contract["end_date"]).replace(tzinfo=UTC)
    licence = plan_licence(workspace_id)
    assert licence == {
        "sku": "enterprise",
        "company": "Org ctlicence",
        "users": 10,
        "starts_at": int(datetime.fromisoformat(body["start_date"]).replace(tzinfo=UTC).timestamp() * 1000),
        "expires_at": int(ends_at.timestamp() * 1000),
        "grace_ends_at": int((ends_at + timedelta(days=10)).timestamp() * 1000),
        "read_only": False,
    }
    owner = "ctlicence.admin@example.com"

    def at(moment: datetime) -> list[uuid.UUID]:
        billed.advance(moment - utcnow())
        reconcile = contract_run(contract_id).reconcile
        assert contract_run(contract_id).notices_sent == 0  # each notice once
        return reconcile

    expected = []
    for days, subject in ((60, "60 days"), (30, "30 days"), (7, "7 days")):
        assert at(ends_at - timedelta(days=days) + timedelta(hours=1)) == []
        expected.append(f"Your Canopy Enterprise licence ends in {subject}")
        assert [s for s in subjects_to(contact) if "licence" in s] == expected
        assert plan_licence(workspace_id)["read_only"] is False
    assert at(ends_at + timedelta(hours=1)) == [workspace_id]
    expected.append("Your Canopy Enterprise licence has expired: 10 days of grace")
    assert plan_licence(workspace_id)["read_only"] is False
    assert at(ends_at + timedelta(days=10, hours=1)) == [workspace_id]
    expected.append("Your Canopy Enterprise workspaces are read-only")
    assert [s for s in subjects_to(contact) if "licence" in s or "read-only" in s] == expected
    assert [s for s in subjects_to(owner) if "licence" in s or "read-only" in s] == expected  # owners too
    assert plan_licence(workspace_id)["read_only"] is True
    shown = plane.api.get(f"/api/v1/contracts/{contract_id}", headers=sales).json()
    assert shown["licence"]["phase"] == "read_only"

    renewed = plane.api.post(f"/api/v1/contracts/{contract_id}/renewal", headers=sales)
    assert renewed.status_code == 200, renewed.text
    assert renewed.json()["licence"]["phase"] == "active"
    licence = plan_licence(workspace_id)
    assert licence["read_only"] is False
    assert licence["expires_at"] == int(ends_at.replace(year=ends_at.year + 1).timestamp() * 1000)
    contract_run(contract_id)
    contract_run(contract_id)
    with session_scope() as session:
        rows = session.scalars(select(ContractInvoice).where(ContractInvoice.contract_id == contract_id)).all()
        assert sorted((row.kind.value, row.contract_year) for row in rows) == [("annual", 1), ("annual", 2)]
        assert all(row.amount_cents == 10 * 9_900 for row in rows)
        renewals = session.scalars(select(AuditEntry).where(AuditEntry.action == "contract.renew")).all()
        assert [entry.target_id for entry in renewals if entry.organization_id == org] == [str(contract_id)]
