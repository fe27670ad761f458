"""Cell routes under /api/v1 (operators and admins only)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from control_plane.cells import service
from control_plane.cells.auth import CellManager
from control_plane.cells.schemas import CellOut, CellRegister, CellStateChange
from control_plane.core.deps import DbSession, IdempotencyKey
from control_plane.core.idempotency import run_once
from control_plane.core.problems import problem_responses

router = APIRouter(prefix="/api/v1/cells", tags=["cells"], responses=problem_responses(401, 403))


@router.post("", status_code=201, response_model=CellOut, responses=problem_responses(409))
def register_cell(body: CellRegister, session: DbSession, principal: CellManager, key: IdempotencyKey) -> JSONResponse:
    """Register a cell from its stack outputs (``pulumi stack output --json``)."""
    payload = body.model_dump(mode="json")

    def create() -> tuple[int, object]:
        cell = service.register(session, payload, principal.actor)
        return 201, service.cell_out(cell, 0).model_dump(mode="json")

    outcome = run_once(session, f"cells:{principal.account_id}", key, payload, create)
    return JSONResponse(outcome.body, status_code=outcome.status_code)


@router.get("", response_model=list[CellOut])
def list_cells(session: DbSession, principal: CellManager) -> list[CellOut]:
    """Every cell with its usage."""
    return service.listing(session)


@router.get("/{name}", response_model=CellOut, responses=problem_responses(404))
def get_cell(name: str, session: DbSession, principal: CellManager) -> CellOut:
    """One cell with its usage."""
    return service.one(session, name)


@router.patch("/{name}", response_model=CellOut, responses=problem_responses(404))
def change_cell_state(name: str, body: CellStateChange, session: DbSession, principal: CellManager) -> CellOut:
    """Drain a cell (it takes no new workspaces) or make it active again."""
    return service.set_state(session, name, body.state, principal.actor)
