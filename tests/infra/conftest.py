"""Runs the cell program once under Pulumi's mocks (no CLI, no plugins, no network) and shares what it declared."""

from __future__ import annotations

import asyncio
from typing import Any

import pulumi
import pytest

from infra.cell.program import define_cell
from tests.infra.mocks import CONFIG, DeclaredCell, RecordingMocks


def pytest_configure(config: pytest.Config) -> None:
    """pulumi-aws warns about its own deprecated resource classes when a submodule is first imported."""
    config.addinivalue_line("filterwarnings", r"ignore::DeprecationWarning:pulumi_aws\..*")


@pytest.fixture(scope="session")
def declared_cell() -> DeclaredCell:
    """The cell of :data:`CONFIG`, declared once under mocks; the outputs are awaited through ``Output.all``."""
    mocks = RecordingMocks()
    # Pulumi asks for the current event loop, which an earlier test may have closed.
    asyncio.set_event_loop(asyncio.new_event_loop())
    pulumi.runtime.set_mocks(mocks, preview=False)
    resolved: dict[str, Any] = {}

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def declare() -> pulumi.Output[None]:
        return pulumi.Output.all(**define_cell(CONFIG)).apply(resolved.update)

    declare()
    return DeclaredCell(mocks.records, resolved)
