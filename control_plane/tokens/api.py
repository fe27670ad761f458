"""API token routes under /api/v1."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from control_plane.accounts import service as accounts
from control_plane.core.authz import ORG_ROLES, Role
from control_plane.core.deps import DbSession
from control_plane.core.problems import Forbidden, problem_responses
from control_plane.core.ratelimit import client_address
from control_plane.tokens import repository, service
from control_plane.tokens.auth import TokenManager
from control_plane.tokens.schemas import PasswordTokenCreate, TokenCreate, TokenCreated, TokenOut

router = APIRouter(prefix="/api/v1", tags=["tokens"], responses=problem_responses(401, 403))


def _created(token: object, secret: str) -> JSONResponse:
    body = TokenCreated.model_validate({**TokenOut.model_validate(token).model_dump(), "token": secret})
    return JSONResponse(body.model_dump(mode="json"), status_code=201)


@router.post("/auth/token", status_code=201, response_model=TokenCreated, responses=problem_responses(404, 429))
def token_from_password(body: PasswordTokenCreate, request: Request, session: DbSession) -> JSONResponse:
    """Exchange a verified account's email and password for a token with its role (rate limited)."""
    address = client_address(request)
    account = accounts.sign_in(session, email=body.email, password=body.password, client_address=address)
    role, organization_id = service.sign_in_grant(session, account, body.organization_id)
    token, secret = service.issue(
        session,
        account_id=account.id,
        role=role,
        organization_id=organization_id,
        name=body.name,
        actor=f"account:{account.id}",
        expires_in_days=30,
    )
    session.commit()
    return _created(token, secret)


@router.post("/tokens", status_code=201, response_model=TokenCreated)
def create_token(body: TokenCreate, session: DbSession, principal: TokenManager) -> JSONResponse:
    """A new token for the caller's account, with the caller's role or a lesser org role."""
    role = body.role or principal.role
    if role != principal.role and not (principal.role == Role.owner and role in ORG_ROLES):
        raise Forbidden("A token can only carry the role of the token that creates it")
    token, secret = service.issue(
        session,
        account_id=principal.account_id,
        role=role,
        organization_id=principal.organization_id,
        name=body.name,
        actor=principal.actor,
        expires_in_days=body.expires_in_days,
    )
    session.commit()
    return _created(token, secret)


@router.get("/tokens", response_model=list[TokenOut])
def list_tokens(session: DbSession, principal: TokenManager) -> list[TokenOut]:
    """The caller's tokens (never their secrets)."""
    return [TokenOut.model_validate(t) for t in repository.list_for_account(session, principal.account_id)]


@router.delete("/tokens/{token_id}", response_model=TokenOut, responses=problem_responses(404))
def revoke_token(token_id: uuid.UUID, session: DbSession, principal: TokenManager) -> TokenOut:
    """Revoke a token."""
    token = service.revoke(session, principal, token_id)
    session.commit()
    return TokenOut.model_validate(token)
