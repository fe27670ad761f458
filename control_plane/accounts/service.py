"""Signup, email verification and password sign-in."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from control_plane.accounts.models import Account, EmailVerification, Membership, WebSession
from control_plane.audit import service as audit
from control_plane.core.authz import Role
from control_plane.core.clock import utcnow
from control_plane.core.problems import Conflict, Problem, Unauthorized
from control_plane.core.security import hash_password, new_token, token_digest, verify_password
from control_plane.core.settings import get_settings
from control_plane.mail import service as mail
from control_plane.organizations import service as organizations
from control_plane.workspaces import repository as workspaces_repo
from control_plane.workspaces import service as workspaces
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Tier, Workspace

VERIFICATION_TTL = timedelta(days=2)
WEB_SESSION_TTL = timedelta(days=14)


@dataclass(frozen=True)
class SignupResult:
    """What a signup made."""

    account: Account
    organization_id: uuid.UUID
    workspace: Workspace


def normalize_email(email: str) -> str:
    """Emails are compared case-insensitively."""
    return email.strip().lower()


def account_by_email(session: Session, email: str) -> Account | None:
    """The account with this email."""
    return session.scalars(select(Account).where(Account.email == normalize_email(email))).one_or_none()


def password_matches(session: Session, email: str, password: str) -> bool:
    """Whether the account with ``email`` exists and has ``password`` (argon2, never a plain digest)."""
    account = account_by_email(session, email)
    return account is not None and verify_password(account.password_hash, password)


def signup(session: Session, *, email: str, password: str, slug: str, display_name: str | None) -> SignupResult:
    """Record a signup: account, organization, workspace waiting for verification, and the email.

    Not committed: the caller commits (idempotency records ride in the same transaction).
    """
    email = normalize_email(email)
    slug = workspaces.claim_slug(session, slug, field="workspace")
    if account_by_email(session, email) is not None:
        raise Conflict("email-taken", "An account with this email already exists; sign in instead", field="email")
    account = Account(email=email, password_hash=hash_password(password))
    session.add(account)
    session.flush()
    actor = f"signup:{account.id}"
    org = organizations.add(session, display_name or slug, account, actor)
    ws = workspaces.new_workspace(
        session,
        organization_id=org.id,
        slug=slug,
        display_name=display_name,
        tier=Tier.professional,
        region=None,
        state=Lifecycle.pending_verification,
        actor=actor,
        initial_admin=(email, account.password_hash),
    )
    send_verification(session, account)
    return SignupResult(account, org.id, ws)


def send_verification(session: Session, account: Account) -> None:
    """Mail a one-time verification link (only its digest is stored)."""
    token = new_token("verify")
    session.add(
        EmailVerification(
            account_id=account.id, token_digest=token_digest(token), expires_at=utcnow() + VERIFICATION_TTL
        )
    )
    link = f"{get_settings().public_url}/signup/verify?token={token}"
    mail.queue(
        session,
        account.email,
        "Confirm your email for Canopy",
        f"Welcome to Canopy!\n\nConfirm your email to create your workspace:\n\n{link}\n\n"
        "The link is valid for 48 hours. If you did not sign up, ignore this message.\n",
    )


class VerificationInvalid(Problem):
    """The link is unknown or expired."""

    def __init__(self) -> None:
        super().__init__(
            400, "verification-invalid", "Invalid verification link", "This link is unknown or has expired"
        )


def verify_email(session: Session, token: str) -> tuple[Account, list[Workspace]]:
    """Confirm an email and start provisioning the account's waiting workspaces (committed).

    Using a link twice is harmless: the account stays verified and nothing is provisioned twice.
    """
    record = session.scalars(
        select(EmailVerification).where(EmailVerification.token_digest == token_digest(token)).with_for_update()
    ).one_or_none()
    now = utcnow()
    if record is None or (record.used_at is None and record.expires_at is not None and record.expires_at < now):
        raise VerificationInvalid()
    account = session.get(Account, record.account_id)
    assert account is not None
    record.used_at = record.used_at or now
    if account.email_verified_at is None:
        account.email_verified_at = now
        audit.record(
            session, actor=f"account:{account.id}", action="account.verify_email", target_type="account",
            target_id=account.id,
        )  # fmt: skip
    org_ids = list(session.scalars(select(Membership.organization_id).where(Membership.account_id == account.id)))
    waiting = workspaces_repo.pending_verification_of(session, org_ids)
    for ws in waiting:
        workspaces.transition(session, ws, Lifecycle.provisioning, f"account:{account.id}")
    session.commit()
    return account, waiting


def authenticate(session: Session, email: str, password: str) -> Account:
    """The verified account with these credentials, or 401 (same answer for every failure)."""
    account = account_by_email(session, email)
    if account is None or not verify_password(account.password_hash, password) or not account.email_verified_at:
        raise Unauthorized("Email or password is wrong, or the email is not confirmed yet")
    return account


def owner_organization(session: Session, account: Account) -> uuid.UUID | None:
    """The organization the account owns, when it owns exactly one."""
    rows = list(
        session.scalars(
            select(Membership.organization_id).where(Membership.account_id == account.id, Membership.role == Role.owner)
        )
    )
    return rows[0] if len(rows) == 1 else None


def open_web_session(session: Session, account: Account) -> str:
    """Start a browser session; returns the cookie secret (not committed)."""
    secret = new_token("web")
    session.add(
        WebSession(account_id=account.id, token_digest=token_digest(secret), expires_at=utcnow() + WEB_SESSION_TTL)
    )
    return secret


def account_for_web_session(session: Session, secret: str | None) -> Account | None:
    """The account of a browser session cookie, if valid."""
    if not secret:
        return None
    row = session.scalars(select(WebSession).where(WebSession.token_digest == token_digest(secret))).one_or_none()
    if row is None or (row.expires_at is not None and row.expires_at < utcnow()):
        return None
    return session.get(Account, row.account_id)
