"""A control plane on the local runtime, billing through localstripe, whose workers provision workspaces, back them
up and move them to Enterprise; helpers for the enterprise-move routes and for signing a contract (contracts API)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from control_plane.core.authz import Role
from control_plane.core.clock import utcnow
from tests.backups.conftest import BackupPlane
from tests.billed_plane import billed_plane
from tests.harness.localstripe import LocalStripe
from tests.waiting import wait_until


class MovePlane(BackupPlane):
    """The control plane, with helpers for the enterprise-move routes."""

    _sales: dict[str, str] | None = None

    @property
    def sales(self) -> dict[str, str]:
        """``Authorization`` headers of a salesperson."""
        if self._sales is None:
            self._sales = self.plane.staff_headers(Role.sales)
        return self._sales

    def organization_of(self, workspace_id: uuid.UUID) -> uuid.UUID:
        return self.plane.row(workspace_id).organization_id

    def sign_contract(self, organization_id: uuid.UUID) -> None:
        """A contract for the organization, as sales signs it through the contracts API."""
        body = {
            "organization_id": str(organization_id),
            "seats_purchased": 50,
            "annual_price_per_seat_cents": 12_000,
            "start_date": utcnow().date().isoformat(),
            "payment_terms_days": 30,
            "billing_contact_email": "finance@customer.example",
            "billing_contact_name": "Customer Finance",
        }
        signed = self.plane.api.post("/api/v1/contracts", json=body, headers=self.sales)
        assert signed.status_code == 201, signed.text

    def move(
        self, organization_id: uuid.UUID, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """``POST .../enterprise-move`` as sales (or ``headers``)."""
        path = f"/api/v1/organizations/{organization_id}/enterprise-move"
        return self.plane.api.post(path, json=body, headers=headers or self.sales)

    def read_move(self, organization_id: uuid.UUID, headers: dict[str, str] | None = None) -> httpx.Response:
        path = f"/api/v1/organizations/{organization_id}/enterprise-move"
        return self.plane.api.get(path, headers=headers or self.sales)

    def wait_move(self, organization_id: uuid.UUID, timeout: float = 300.0) -> dict[str, Any]:
        """The move once done or failed."""
        found: dict[str, Any] = {}

        def ended() -> bool:
            found.update(self.read_move(organization_id).json())
            return found["state"] in ("done", "failed")

        wait_until(lambda: f"move {found}\n{self.plane.worker_logs()}", ended, timeout)
        return found


@pytest.fixture(scope="module")
def moving(
    create_database: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory, localstripe: LocalStripe
) -> Iterator[MovePlane]:
    """Billing on (through localstripe), so a moved organization has a Professional subscription to end."""
    with billed_plane(create_database, tmp_path_factory, localstripe, "moves") as billed:
        yield MovePlane(billed.plane)


@pytest.fixture(autouse=True)
def _workers_end_with_their_test(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "moving" in request.fixturenames:
        request.getfixturevalue("moving").plane.stop_workers()
