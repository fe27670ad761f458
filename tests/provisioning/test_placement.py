"""With the aws provider the API places professional workspaces in a cell of their region as it creates them,
and a full region is a clear 503 problem that creates nothing. (No worker runs in this module.)
"""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, select

from control_plane.accounts.models import Account
from control_plane.app import create_app
from control_plane.cells import service as cells
from control_plane.core.authz import Role
from control_plane.core.db import session_scope
from control_plane.tokens import service as tokens
from control_plane.workspaces.models import Workspace
from tests.aws.conftest import CELL
from tests.cells.conftest import stack_outputs
from tests.harness.moto import REGION
from tests.reconciler.conftest import Plane, password_hash


def sales_headers() -> dict[str, str]:
    """The headers of a sales token (staff create organizations and their workspaces)."""
    with session_scope() as session:
        account = Account(email=f"sales-{uuid.uuid4().hex[:8]}@canopy.example", password_hash=password_hash())
        session.add(account)
        session.flush()
        _, secret = tokens.issue(
            session, account_id=account.id, role=Role.sales, organization_id=None, name="test", actor="test"
        )
        return {"Authorization": f"Bearer {secret}"}


def test_professional_workspaces_are_placed_and_a_full_region_is_a_503(plane: Plane) -> None:
    with session_scope() as session:
        cells.register(session, stack_outputs("full", "us-west-2", max_workspaces=1, max_databases=1), actor="test")
    headers = sales_headers()

    def create(slug: str, region: str, tier: str = "professional") -> Response:
        body = {"slug": slug, "organization_id": org_id, "tier": tier, "region": region}
        return client.post("/api/v1/workspaces", json=body, headers=headers)

    with TestClient(create_app()) as client:
        customer = {"name": "Placement", "owner_email": f"owner-{uuid.uuid4().hex[:8]}@placement.example"}
        organization = client.post("/api/v1/organizations", json=customer, headers=headers)
        assert organization.status_code == 201, organization.text
        org_id = organization.json()["id"]
        placed = create("placed-here", REGION)
        assert placed.status_code == 201, placed.text
        assert (placed.json()["cell"], placed.json()["region"]) == (CELL, REGION)
        assert create("takes-the-last", "us-west-2").json()["cell"] == "full"

        full = create("no-room", "us-west-2")
        assert full.status_code == 503 and full.headers["content-type"] == "application/problem+json"
        problem = full.json()
        assert problem["title"] == "No cell capacity" and problem["type"].endswith("no-cell-capacity")
        assert "us-west-2" in problem["detail"]

        silo = create("own-silo", "us-west-2", tier="enterprise")
        assert (silo.status_code, silo.json()["cell"]) == (201, None), "an enterprise silo needs no cell"
    with session_scope() as session:
        assert session.scalar(select(func.count()).where(Workspace.slug == "no-room")) == 0
