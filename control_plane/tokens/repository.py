"""SQL for API tokens."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from control_plane.tokens.models import ApiToken


def by_digest(session: Session, digest: str) -> ApiToken | None:
    """The token with this digest."""
    return session.scalars(select(ApiToken).where(ApiToken.token_digest == digest)).one_or_none()


def list_for_account(session: Session, account_id: uuid.UUID) -> list[ApiToken]:
    """Tokens of an account, newest first."""
    query = select(ApiToken).where(ApiToken.account_id == account_id).order_by(ApiToken.created_at.desc())
    return list(session.scalars(query))


def live_in_organization(session: Session, account_id: uuid.UUID, organization_id: uuid.UUID) -> list[ApiToken]:
    """The account's unrevoked tokens bound to the organization."""
    query = select(ApiToken).where(
        ApiToken.account_id == account_id,
        ApiToken.organization_id == organization_id,
        ApiToken.revoked_at.is_(None),
    )
    return list(session.scalars(query))
