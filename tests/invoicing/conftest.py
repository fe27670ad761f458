"""Billing tests on a control plane billing through localstripe (:mod:`tests.billed_plane`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.billed_plane import BilledPlane, _workers_end_with_their_test, billed_plane  # noqa: F401
from tests.harness.localstripe import LocalStripe


@pytest.fixture(scope="module")
def billed(
    create_database: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory, localstripe: LocalStripe
) -> Iterator[BilledPlane]:
    with billed_plane(create_database, tmp_path_factory, localstripe, "invoicing") as billed:
        yield billed
