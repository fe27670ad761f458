"""Issue, resolve and revoke API tokens."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.orm import Session

from control_plane.accounts import repository as accounts_repo
from control_plane.accounts.models import Account
from control_plane.audit import service as audit
from control_plane.core.authz import ORG_ROLES, Principal, Role
from control_plane.core.clock import utcnow
from control_plane.core.problems import Forbidden, InvalidInput, NotFound, Unauthorized
from control_plane.core.security import new_token, token_digest
from control_plane.tokens import repository
from control_plane.tokens.models import ApiToken

TOKEN_PREFIX = "cnp"


def issue(
    session: Session,
    *,
    account_id: uuid.UUID,
    role: Role,
    organization_id: uuid.UUID | None,
    name: str,
    actor: str,
    expires_in_days: int | None = None,
) -> tuple[ApiToken, str]:
    """Create a token; returns the row and the secret (shown once, stored only as a digest)."""
    if (role in ORG_ROLES) != (organization_id is not None):
        raise Forbidden("Organization roles need an organization; staff roles must not have one")
    secret = new_token(TOKEN_PREFIX)
    expires_at = utcnow() + timedelta(days=expires_in_days) if expires_in_days else None
    token = ApiToken(
        account_id=account_id,
        organization_id=organization_id,
        name=name,
        role=role,
        token_digest=token_digest(secret),
        display_prefix=secret[:12],
        expires_at=expires_at,
    )
    session.add(token)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="token.create",
        target_type="api_token",
        target_id=token.id,
        organization_id=organization_id,
        after={"name": name, "role": role.value},
    )
    return token, secret


def sign_in_grant(
    session: Session, account: Account, organization_id: uuid.UUID | None
) -> tuple[Role, uuid.UUID | None]:
    """The role and organization a password sign-in may carry: the staff role, or the account's own role
    (``Membership.role``) in an organization it belongs to; any other organization is 404.

    Without ``organization_id`` the account's only organization is meant.
    """
    if account.staff_role is not None:
        return account.staff_role, None
    if organization_id is None:
        memberships = accounts_repo.memberships(session, account.id)
        if len(memberships) != 1:
            raise InvalidInput("organization_id", "is required: the account belongs to several organizations or none")
        return memberships[0].role, memberships[0].organization_id
    role = accounts_repo.membership_role(session, account.id, organization_id)
    if role is None:
        raise NotFound("Organization")
    return role, organization_id


def resolve(session: Session, secret: str) -> Principal:
    """The principal a bearer secret stands for; 401 if unknown, revoked or expired."""
    token = repository.by_digest(session, token_digest(secret))
    now = utcnow()
    if token is None or token.revoked_at is not None or (token.expires_at and token.expires_at <= now):
        raise Unauthorized("The API token is unknown, revoked or expired")
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        token.last_used_at = now
    return Principal(token.account_id, token.role, token.organization_id, token.id)


def revoke(session: Session, principal: Principal, token_id: uuid.UUID) -> ApiToken:
    """Revoke one of the caller's own tokens (admins may revoke any)."""
    token = session.get(ApiToken, token_id)
    if token is None or (token.account_id != principal.account_id and principal.role != Role.admin):
        raise NotFound("Token")
    if token.revoked_at is None:
        _revoke(session, token, principal.actor)
    return token


def revoke_in_organization(session: Session, account_id: uuid.UUID, organization_id: uuid.UUID, actor: str) -> None:
    """Revoke the account's tokens bound to the organization (its membership ended); not committed."""
    for token in repository.live_in_organization(session, account_id, organization_id):
        _revoke(session, token, actor)


def _revoke(session: Session, token: ApiToken, actor: str) -> None:
    token.revoked_at = utcnow()
    audit.record(
        session,
        actor=actor,
        action="token.revoke",
        target_type="api_token",
        target_id=token.id,
        organization_id=token.organization_id,
    )
