"""Placement of pooled workspaces: the active cell of the region with the most room, a clear problem
when the region is full, and no overfilled cell under concurrent placements.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter

import pytest
from sqlalchemy.orm import Session

from control_plane.cells import service
from control_plane.cells.models import CellState
from control_plane.core.db import new_session, session_scope
from control_plane.workspaces import service as workspaces
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Tier, Workspace
from tests.cells.conftest import stack_outputs


def register(region: str, name: str, max_workspaces: int, max_databases: int | None = None) -> None:
    outputs = stack_outputs(name, region, max_workspaces, max_databases or max_workspaces)
    with session_scope() as session:
        service.register(session, outputs, actor="test")


def add_workspace(
    session: Session, organization_id: uuid.UUID, cell: str | None, region: str, tier: Tier = Tier.professional
) -> Workspace:
    """A workspace placed in ``cell``, as signup inserts it (``provisioning``)."""
    ws = Workspace(
        organization_id=organization_id,
        slug=f"w{uuid.uuid4().hex[:12]}",
        display_name="w",
        tier=tier,
        region=region,
        cell=cell,
        desired_release="0.1.0",
        lifecycle_state=Lifecycle.provisioning,
        conditions=[],
        outputs={},
    )
    session.add(ws)
    session.flush()
    return ws


def place_and_add(organization_id: uuid.UUID, region: str) -> str:
    """One signup: place, insert the workspace in the cell, commit (which releases the cell locks)."""
    with session_scope() as session:
        cell = service.place_workspace(session, Tier.professional, region)
        assert cell is not None
        add_workspace(session, organization_id, cell.name, region)
        return cell.name


def test_the_cell_with_most_room_is_chosen_until_the_region_is_full(organization_id: uuid.UUID) -> None:
    region = "ta-placement-1"
    register(region, "pa", max_workspaces=3)
    register(region, "pb", max_workspaces=50, max_databases=2)  # the lower limit counts
    register(region, "pc", max_workspaces=100)
    register("tb-placement-1", "pd", max_workspaces=100)  # another region
    with session_scope() as session:
        service.set_state(session, "pc", CellState.draining, actor="test")
        gone = add_workspace(session, organization_id, "pa", region)  # deleted, through the lifecycle: frees its slot
        for state in (Lifecycle.pending_deletion, Lifecycle.deleted):
            workspaces.transition(session, gone, state, actor="test")
        add_workspace(session, organization_id, "pb", region, tier=Tier.enterprise)  # not a pooled workspace

    placed = [place_and_add(organization_id, region) for _ in range(5)]
    assert placed[0] == "pa"  # 3 free against 2
    assert Counter(placed) == {"pa": 3, "pb": 2}
    with session_scope() as session, pytest.raises(service.NoCellCapacity) as full:
        service.place_workspace(session, Tier.professional, region)
    assert (full.value.status, full.value.slug) == (503, "no-cell-capacity")
    assert region in full.value.detail
    with session_scope() as session:
        assert service.place_workspace(session, Tier.enterprise, region) is None
        assert {c.name: c.usage.room for c in service.listing(session) if c.region == region} == {
            "pa": 0,
            "pb": 0,
            "pc": 100,
        }


def test_concurrent_placements_never_overfill_a_cell(organization_id: uuid.UUID) -> None:
    region = "tc-placement-1"
    register(region, "qa", max_workspaces=3)
    register(region, "qb", max_workspaces=2)
    start = threading.Barrier(12)
    placed: list[str] = []
    refused: list[int] = []

    def signup() -> None:
        start.wait()
        try:
            placed.append(place_and_add(organization_id, region))
        except service.NoCellCapacity:
            refused.append(1)

    threads = [threading.Thread(target=signup) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert Counter(placed) == {"qa": 3, "qb": 2} and len(refused) == 7
    session = new_session()
    try:
        counts = Counter(ws.cell for ws in session.query(Workspace).filter(Workspace.region == region))
    finally:
        session.close()
    assert counts == {"qa": 3, "qb": 2}
