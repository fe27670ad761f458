"""SQL for cells and their usage."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from control_plane.cells.models import Cell, CellState
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Tier, Workspace


def by_name(session: Session, name: str, *, for_update: bool = False) -> Cell | None:
    """A cell by name."""
    query = select(Cell).where(Cell.name == name)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def all_cells(session: Session) -> list[Cell]:
    """Every cell, by name."""
    return list(session.scalars(select(Cell).order_by(Cell.name)))


def lock_active(session: Session, region: str) -> list[Cell]:
    """The active cells of ``region``, row-locked in name order (so lockers never deadlock) until commit."""
    query = select(Cell).where(Cell.region == region, Cell.state == CellState.active).order_by(Cell.name)
    return list(session.scalars(query.with_for_update()))


def usage(session: Session, names: Iterable[str]) -> dict[str, int]:
    """Live (not deleted) professional workspaces per cell name; cells without any are absent."""
    query = (
        select(Workspace.cell, func.count())
        .where(
            Workspace.cell.in_(list(names)),
            Workspace.tier == Tier.professional,
            Workspace.lifecycle_state != Lifecycle.deleted,
        )
        .group_by(Workspace.cell)
    )
    return {str(cell): int(count) for cell, count in session.execute(query)}
