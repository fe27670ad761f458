"""The billing API against a real control plane: workers that provision Professional workspaces (their trial starts
when they converge), the API in process, localstripe as the payment gateway, a clock the tests move."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.harness.localstripe import API_KEY, PUBLISHABLE_KEY, LocalStripe
from tests.invoicing.conftest import BilledPlane
from tests.reconciler.conftest import plane_context


@pytest.fixture(scope="module")
def billed(
    create_database: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory, localstripe: LocalStripe
) -> Iterator[BilledPlane]:
    """A control plane billing through localstripe (its billing runs are the ones the API asks the workers for)."""
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
    with plane_context(create_database, tmp_path_factory, "billing_api", **env) as plane:
        plane.start_worker()
        yield BilledPlane(plane, clock_file)
