"""Organization, member and invitation routes under /api/v1."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from control_plane.core.authz import Role
from control_plane.core.deps import DbSession, IdempotencyKey
from control_plane.core.idempotency import run_once
from control_plane.core.problems import problem_responses
from control_plane.organizations import service
from control_plane.organizations.auth import MemberManager, MemberReader, OrganizationCreator, OrganizationReader
from control_plane.organizations.schemas import (
    InvitationCreate,
    InvitationOut,
    MemberOut,
    OrganizationCreate,
    OrganizationOut,
)

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


@router.get("/{organization_id}/members", response_model=list[MemberOut], responses=problem_responses(404))
def list_members(organization_id: uuid.UUID, session: DbSession, principal: MemberReader) -> list[MemberOut]:
    """The organization's members, oldest first."""
    return [
        MemberOut(account_id=m.account_id, email=email, role=m.role.value, created_at=m.created_at)
        for m, email in service.members(session, principal, organization_id)
    ]


@router.delete("/{organization_id}/members/{account_id}", status_code=204, responses=problem_responses(404, 409))
def remove_member(
    organization_id: uuid.UUID, account_id: uuid.UUID, session: DbSession, principal: MemberManager
) -> Response:
    """End a membership and revoke the account's tokens for the organization (owner, admin; never the last owner)."""
    service.remove_member(session, principal, organization_id, account_id)
    return Response(status_code=204)


@router.post(
    "/{organization_id}/invitations",
    status_code=201,
    response_model=InvitationOut,
    responses=problem_responses(404, 409),
)
def create_invitation(
    organization_id: uuid.UUID,
    body: InvitationCreate,
    session: DbSession,
    principal: MemberManager,
    key: IdempotencyKey,
) -> JSONResponse:
    """Invite an email as owner or billing member (owner, admin): the link is mailed to that address only.

    Inviting an email again while its invitation is open replaces that invitation; a member is a 409.
    """

    def create() -> tuple[int, object]:
        invitation = service.invite(session, principal, organization_id, body.email, Role(body.role))
        return 201, InvitationOut.model_validate(invitation).model_dump(mode="json")

    payload = {"organization_id": str(organization_id), **body.model_dump(mode="json")}
    outcome = run_once(session, f"invitations:{principal.account_id}", key, payload, create)
    return JSONResponse(outcome.body, status_code=outcome.status_code)


@router.get("/{organization_id}/invitations", response_model=list[InvitationOut], responses=problem_responses(404))
def list_invitations(organization_id: uuid.UUID, session: DbSession, principal: MemberReader) -> list[InvitationOut]:
    """Invitations that can still be accepted, oldest first."""
    return [InvitationOut.model_validate(i) for i in service.pending_invitations(session, principal, organization_id)]


@router.delete("/{organization_id}/invitations/{invitation_id}", status_code=204, responses=problem_responses(404, 409))
def revoke_invitation(
    organization_id: uuid.UUID, invitation_id: uuid.UUID, session: DbSession, principal: MemberManager
) -> Response:
    """Revoke an invitation (owner, admin): its link stops working."""
    service.revoke_invitation(session, principal, organization_id, invitation_id)
    return Response(status_code=204)
