"""Organization routes under /api/v1."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from control_plane.core.deps import DbSession, IdempotencyKey
from control_plane.core.idempotency import run_once
from control_plane.core.problems import problem_responses
from control_plane.organizations import service
from control_plane.organizations.auth import OrganizationCreator, OrganizationReader
from control_plane.organizations.schemas import OrganizationCreate, OrganizationOut

router = APIRouter(prefix="/api/v1/organizations", tags=["organizations"], responses=problem_responses(401, 403))


@router.post("", status_code=201, response_model=OrganizationOut, responses=problem_responses(409))
def create_organization(
    body: OrganizationCreate, session: DbSession, principal: OrganizationCreator, key: IdempotencyKey
) -> JSONResponse:
    """Create a customer organization (sales, admin)."""

    def create() -> tuple[int, object]:
        org = service.create_for_owner_email(session, principal, body.name, body.owner_email)
        return 201, OrganizationOut.model_validate(org).model_dump(mode="json")

    outcome = run_once(session, f"organizations:{principal.account_id}", key, body.model_dump(mode="json"), create)
    return JSONResponse(outcome.body, status_code=outcome.status_code)


@router.get("", response_model=list[OrganizationOut])
def list_organizations(session: DbSession, principal: OrganizationReader) -> list[OrganizationOut]:
    """Organizations the caller may see."""
    return [OrganizationOut.model_validate(o) for o in service.list_visible(session, principal)]


@router.get("/{organization_id}", response_model=OrganizationOut, responses=problem_responses(404))
def get_organization(organization_id: uuid.UUID, session: DbSession, principal: OrganizationReader) -> OrganizationOut:
    """One organization."""
    return OrganizationOut.model_validate(service.visible(session, principal, organization_id))
