"""A control plane billing through localstripe on a clock the tests move (shared by the billing test packages).

The billing run and the seat collection are called as the workers' tasks call them (``canopy billing run|collect-seats``
do the same), so a test decides exactly when a day's seats are counted and when billing runs; the periodic billing
tasks are off.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import httpx
import pytest
from mattermostdriver import Driver

from control_plane.core.clock import advance, utcnow
from control_plane.subscriptions import seats, tasks
from control_plane.subscriptions.run import RunOutcome
from control_plane.workspaces.lifecycle import Lifecycle
from tests.harness.localstripe import API_KEY, PUBLISHABLE_KEY, LocalStripe
from tests.reconciler.conftest import PASSWORD, Plane, plane_context


@dataclass
class BilledPlane:
    """A control plane with billing on, and its clock."""

    plane: Plane
    clock_file: Path

    def advance(self, by: timedelta) -> datetime:
        """Move every process's clock forward; returns the new now."""
        advance(self.clock_file, by)
        return utcnow()

    def advance_to_next(self, hour: int) -> datetime:
        """Move the clock to the next ``hour``:00 UTC."""
        now = utcnow()
        target = datetime.combine(now.date(), time(hour), tzinfo=UTC)
        if target <= now:
            target += timedelta(days=1)
        return self.advance(target - now)

    def professional_workspace(self, slug: str) -> tuple[uuid.UUID, uuid.UUID]:
        """A Professional workspace provisioned by the workers, in its trial: (workspace id, organization id)."""
        if not self.plane.workers:
            self.plane.start_worker()
        workspace_id = self.plane.create_workspace(slug)
        ws = self.plane.wait_state(workspace_id, Lifecycle.trialing, timeout=90)
        return workspace_id, ws.organization_id

    def settled(self, workspace_id: uuid.UUID, state: Lifecycle) -> None:
        """Wait until the workspace is in ``state`` and reconciled since (its server was told its plan)."""
        self.plane.wait_for(
            workspace_id,
            lambda ws: ws.lifecycle_state == state and ws.observed_generation >= ws.generation,
            timeout=60,
        )

    def driver(self, workspace_id: uuid.UUID, login_id: str, password: str = PASSWORD) -> Driver:
        """``mattermostdriver`` on the workspace's server, logged in."""
        port = int(self.plane.row(workspace_id).outputs["port"])
        driver = Driver(
            {"url": "127.0.0.1", "port": port, "scheme": "http", "login_id": login_id, "password": password}
        )
        driver.login()
        return driver

    def billing_api(self, workspace_id: uuid.UUID, method: str, path: str = "", **kwargs: object) -> httpx.Response:
        """``method /api/v1/organizations/<org>/billing<path>`` as the workspace's owner."""
        org = self.plane.row(workspace_id).organization_id
        return self.plane.api.request(  # type: ignore[arg-type]
            method,
            f"/api/v1/organizations/{org}/billing{path}",
            headers=self.plane.owner_headers[workspace_id],
            **kwargs,
        )

    def collect_seats(self) -> int:
        """Today's seat snapshots, as the periodic collection takes them."""
        return seats.collect().recorded

    def bill(self, organization_id: uuid.UUID) -> RunOutcome:
        """The organization's billing run, as the workers' billing job does it."""
        return tasks.bill(organization_id)


@contextmanager
def billed_plane(
    create_database: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
    localstripe: LocalStripe,
    label: str,
) -> Iterator[BilledPlane]:
    """A control plane on a database of its own billing through ``localstripe``, its clock in a file of its own."""
    clock_file = tmp_path_factory.mktemp("clock") / "offset"
    env = {
        "CANOPY_DEV_MODE": "true",
        "CANOPY_CLOCK_FILE": str(clock_file),
        "CANOPY_STRIPE_API_KEY": API_KEY,
        "CANOPY_STRIPE_API_BASE": localstripe.endpoint,
        "CANOPY_STRIPE_DIALECT": "localstripe",
        "CANOPY_STRIPE_PUBLISHABLE_KEY": PUBLISHABLE_KEY,
        "CANOPY_STRIPE_JS_URL": f"{localstripe.endpoint}/js.stripe.com/v3/",
        "CANOPY_BILLING_RUN_SECONDS": "0",
        "CANOPY_BILLING_SEAT_COLLECTION_SECONDS": "0",
    }
    with plane_context(create_database, tmp_path_factory, label, **env) as plane:
        yield BilledPlane(plane, clock_file)


@pytest.fixture(autouse=True)
def _workers_end_with_their_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Stop the workers a test started when it ends: the next test (in any order) starts its own."""
    yield
    if "billed" in request.fixturenames:
        request.getfixturevalue("billed").plane.stop_workers()
