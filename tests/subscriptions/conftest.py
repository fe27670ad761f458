"""The billing API against a real control plane: workers that provision Professional workspaces (their trial starts
when they converge), the API in process, localstripe as the payment gateway, a clock the tests move."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.billed_plane import BilledPlane, billed_plane
from tests.harness.localstripe import LocalStripe


@pytest.fixture(scope="module")
def billed(
    create_database: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory, localstripe: LocalStripe
) -> Iterator[BilledPlane]:
    """A control plane billing through localstripe (its billing runs are the ones the API asks the workers for)."""
    with billed_plane(create_database, tmp_path_factory, localstripe, "billing_api") as billed:
        billed.plane.start_worker()
        yield billed
