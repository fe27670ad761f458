"""Enterprise contract tests on a control plane billing through localstripe, on a clock the tests move
(:mod:`tests.billed_plane`): contract runs and seat collections are called as the workers' tasks call them."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from control_plane.contracts.run import ContractRunOutcome
from control_plane.contracts.tasks import run
from control_plane.core.db import session_scope
from control_plane.mail import service as mail
from tests.billed_plane import BilledPlane, _workers_end_with_their_test, billed_plane  # noqa: F401
from tests.harness.localstripe import LocalStripe


@pytest.fixture(scope="module")
def billed(
    create_database: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory, localstripe: LocalStripe
) -> Iterator[BilledPlane]:
    with billed_plane(create_database, tmp_path_factory, localstripe, "contracts") as billed:
        yield billed


def contract_run(contract_id: uuid.UUID) -> ContractRunOutcome:
    """The contract's run, as the workers' job does it."""
    return run(contract_id)


def subjects_to(address: str) -> list[str]:
    """The subjects of the mail recorded for ``address``, oldest first."""
    with session_scope() as session:
        return [message.subject for message in reversed(mail.recent(session, 500, to=address))]
