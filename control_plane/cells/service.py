"""Cell actions: register, list with usage, drain, and placement of pooled workspaces."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from control_plane.audit import service as audit
from control_plane.cells import repository
from control_plane.cells.models import Cell, CellState
from control_plane.cells.schemas import CellOut, CellUsage
from control_plane.core.db import session_scope
from control_plane.core.problems import Conflict, NotFound, Problem
from control_plane.workspaces.models import Tier
from infra.conventions import CellOutputs, CellOutputsError

OUTPUT_FIELDS = tuple(f.name for f in dataclasses.fields(CellOutputs))
_FIELD_OF_PROBLEM = re.compile(r"^(?:(?:missing|unexpected) output '(?P<quoted>[^']+)'|(?P<named>\w+): .*)$")


class NoCellCapacity(Problem):
    """No active cell of the region has room for another pooled workspace."""

    def __init__(self, region: str) -> None:
        super().__init__(
            503,
            "no-cell-capacity",
            "No cell capacity",
            f"No active cell in region {region} has room for another workspace; an operator must add a cell",
            region=region,
        )


def invalid_outputs(exc: CellOutputsError) -> Problem:
    """A 422 problem naming each invalid, missing or unexpected field."""
    errors = []
    for text in exc.problems:
        match = _FIELD_OF_PROBLEM.match(text)
        field = (match.group("quoted") or match.group("named")) if match else "body"
        errors.append({"field": field, "detail": text})
    return Problem(422, "invalid-input", "Invalid input", "The cell outputs have invalid fields", errors=errors)


def snapshot(cell: Cell) -> dict[str, Any]:
    """The audited fields of a cell (everything registered, no secret: there is none)."""
    return {name: getattr(cell, name) for name in OUTPUT_FIELDS} | {"state": cell.state.value}


def register(session: Session, outputs: Mapping[str, Any], actor: str) -> Cell:
    """Validate stack outputs and add the cell (not committed); 422 names bad fields, 409 if the name is taken."""
    try:
        parsed = CellOutputs.from_stack_outputs(outputs)
    except CellOutputsError as exc:
        raise invalid_outputs(exc) from None
    if repository.by_name(session, parsed.name) is not None:
        raise _exists(parsed.name)
    values = {name: getattr(parsed, name) for name in OUTPUT_FIELDS}
    cell = Cell(**values | {"private_subnet_ids": list(parsed.private_subnet_ids), "state": CellState.active})
    session.add(cell)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise _exists(parsed.name) from None
    audit.record(
        session, actor=actor, action="cell.register", target_type="cell", target_id=cell.name, after=snapshot(cell)
    )
    return cell


def _exists(name: str) -> Conflict:
    return Conflict("cell-exists", f"A cell named {name} is already registered", field="name")


def get(session: Session, name: str, *, for_update: bool = False) -> Cell:
    """A cell by name, or 404."""
    cell = repository.by_name(session, name, for_update=for_update)
    if cell is None:
        raise NotFound("Cell")
    return cell


def cell_out(cell: Cell, used: int) -> CellOut:
    """Serialize a cell with its usage."""
    values = {name: getattr(cell, name) for name in OUTPUT_FIELDS}
    usage = CellUsage(workspaces=used, room=max(0, cell.capacity - used))
    return CellOut(id=cell.id, state=cell.state, created_at=cell.created_at, usage=usage, **values)


def listing(session: Session) -> list[CellOut]:
    """Every cell with its usage."""
    cells = repository.all_cells(session)
    used = repository.usage(session, [c.name for c in cells])
    return [cell_out(c, used.get(c.name, 0)) for c in cells]


def one(session: Session, name: str) -> CellOut:
    """One cell with its usage."""
    cell = get(session, name)
    return cell_out(cell, repository.usage(session, [name]).get(name, 0))


def set_state(session: Session, name: str, state: CellState, actor: str) -> CellOut:
    """Drain or reactivate a cell; audited and committed."""
    cell = get(session, name, for_update=True)
    if cell.state != state:
        before = snapshot(cell)
        cell.state = state
        audit.record(
            session,
            actor=actor,
            action=f"cell.{state.value}",
            target_type="cell",
            target_id=name,
            before=before,
            after=snapshot(cell),
        )
    session.commit()
    return one(session, name)


def place_workspace(session: Session, tier: Tier, region: str) -> Cell | None:
    """The active cell of ``region`` with the most room for a pooled workspace (None for enterprise silos).

    Call it in the transaction that inserts the workspace with ``cell`` set: the candidate cells stay
    row-locked until that commit, so concurrent placements queue and each one counts the others'
    committed workspaces (READ COMMITTED reads a fresh snapshot per statement). No room raises
    :class:`NoCellCapacity`.
    """
    if tier == Tier.enterprise:
        return None
    cells = repository.lock_active(session, region)
    used = repository.usage(session, [c.name for c in cells])
    best = max(cells, key=lambda c: c.capacity - used.get(c.name, 0), default=None)
    if best is None or best.capacity - used.get(best.name, 0) <= 0:
        raise NoCellCapacity(region)
    return best


def outputs_of(cell: Cell) -> CellOutputs:
    """The registered outputs of ``cell`` (what the AWS providers work with)."""
    values = {name: getattr(cell, name) for name in OUTPUT_FIELDS}
    return CellOutputs(**values | {"private_subnet_ids": tuple(cell.private_subnet_ids)})


def lookup(name: str) -> CellOutputs:
    """The outputs of cell ``name`` read in a session of its own (the providers' cell lookup)."""
    with session_scope() as session:
        return outputs_of(get(session, name))
