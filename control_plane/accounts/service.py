"""Signup, email verification and password sign-in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import cache

from sqlalchemy import select
from sqlalchemy.orm import Session

from control_plane.accounts import repository
from control_plane.accounts.models import Account, EmailVerification, WebSession
from control_plane.audit import service as audit
from control_plane.core.clock import utcnow
from control_plane.core.problems import Problem, Unauthorized
from control_plane.core.ratelimit import hit
from control_plane.core.security import has_password, hash_password, new_token, token_digest, verify_password
from control_plane.core.settings import get_settings
from control_plane.mail import service as mail
from control_plane.organizations import service as organizations
from control_plane.workspaces import repository as workspaces_repo
from control_plane.workspaces import service as workspaces
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Tier, Workspace

VERIFICATION_TTL = timedelta(days=2)
WEB_SESSION_TTL = timedelta(days=14)
SIGN_IN_WINDOW_SECONDS = 900
SIGN_IN_ADDRESS_LIMIT = 50  # credential checks per client address per window (offices share an address)
SIGN_IN_EMAIL_LIMIT = 10  # credential checks per email per window


@dataclass(frozen=True)
class SignupRecorded:
    """What a signup answers, alike whether the email was new or already registered."""

    email: str
    slug: str


def signup(session: Session, *, email: str, password: str, slug: str, display_name: str | None) -> SignupRecorded:
    """Record a signup: account, organization, workspace waiting for verification, and the email.

    An email that already has an account only gets a mail about the attempt: nothing else is made, and
    the caller's answer (and the work done) is the same, so signup does not tell which emails are
    registered. Not committed: the caller commits (idempotency records ride in the same transaction).
    """
    email = repository.normalize_email(email)
    slug = workspaces.claim_slug(session, slug, field="workspace")
    password_hash = hash_password(password)  # before the lookup: both outcomes cost one hash
    existing = repository.account_by_email(session, email)
    if existing is not None:
        _mail_signup_attempt(session, existing)
        return SignupRecorded(email, slug)
    account = Account(email=email, password_hash=password_hash)
    session.add(account)
    session.flush()
    actor = f"signup:{account.id}"
    org = organizations.add(session, display_name or slug, account, actor)
    workspaces.new_workspace(
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
    return SignupRecorded(email, slug)


def _mail_signup_attempt(session: Session, account: Account) -> None:
    """Tell an account holder that someone signed up with their email; a still unconfirmed account gets a new link."""
    notice = "Someone tried to sign up for Canopy with this email address, which already has an account."
    if account.email_verified_at is None:
        send_verification(session, account, intro=notice)
        return
    mail.queue(
        session,
        account.email,
        "Sign in to Canopy",
        f"{notice}\n\nIf it was you, sign in instead:\n\n{get_settings().public_url}/login\n\n"
        "If it was not you, ignore this message: nothing was changed.\n",
    )


def send_verification(session: Session, account: Account, intro: str = "Welcome to Canopy!") -> None:
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
        f"{intro}\n\nConfirm your email to create your workspace:\n\n{link}\n\n"
        "The link is valid for 48 hours. If you did not sign up, ignore this message.\n",
    )


class VerificationInvalid(Problem):
    """The link is unknown or expired."""

    def __init__(self) -> None:
        super().__init__(
            400, "verification-invalid", "Invalid verification link", "This link is unknown or has expired"
        )


@dataclass(frozen=True)
class EmailVerified:
    """What following a verification link did."""

    account: Account
    started: list[Workspace]  # workspaces that began provisioning now
    first_use: bool  # only the first use of a link may sign a browser in


def verify_email(session: Session, token: str) -> EmailVerified:
    """Confirm an email and start provisioning the account's waiting workspaces (committed).

    Using a link twice is harmless: the account stays verified, nothing is provisioned twice, and
    the later use is reported as such (it must not open a session).
    """
    record = session.scalars(
        select(EmailVerification).where(EmailVerification.token_digest == token_digest(token)).with_for_update()
    ).one_or_none()
    now = utcnow()
    if record is None or (record.used_at is None and record.expires_at is not None and record.expires_at < now):
        raise VerificationInvalid()
    account = session.get(Account, record.account_id)
    assert account is not None
    first_use = record.used_at is None
    record.used_at = record.used_at or now
    if account.email_verified_at is None:
        account.email_verified_at = now
        audit.record(
            session, actor=f"account:{account.id}", action="account.verify_email", target_type="account",
            target_id=account.id,
        )  # fmt: skip
    org_ids = [m.organization_id for m in repository.memberships(session, account.id)]
    waiting = workspaces_repo.pending_verification_of(session, org_ids)
    for ws in waiting:
        workspaces.transition(session, ws, Lifecycle.provisioning, f"account:{account.id}")
    session.commit()
    return EmailVerified(account, waiting, first_use)


def limit_sign_ins(session: Session, client_address: str, email: str) -> None:
    """Count one credential check per client address and per email; raise RateLimited past either limit.

    The email is counted by its digest, so the counter table holds no addresses people typed.
    """
    hit(session, f"login-addr:{client_address}", SIGN_IN_ADDRESS_LIMIT, SIGN_IN_WINDOW_SECONDS)
    email_key = token_digest(repository.normalize_email(email))
    hit(session, f"login-email:{email_key}", SIGN_IN_EMAIL_LIMIT, SIGN_IN_WINDOW_SECONDS)


def sign_in(session: Session, *, email: str, password: str, client_address: str) -> Account:
    """The verified account with these credentials: every password check (web or API) goes through here.

    Rate limited before the password is checked (RateLimited). Every failure is the same 401 after the
    same work: an unknown email, or an account with no password yet (an owner made by sales), is checked against a
    dummy hash, an unconfirmed account's password is checked too, so neither the answer nor its timing tells which
    emails exist.
    """
    limit_sign_ins(session, client_address, email)
    account = repository.account_by_email(session, email)
    usable = account is not None and has_password(account.password_hash)
    password_ok = verify_password(account.password_hash if account and usable else _dummy_password_hash(), password)
    if account is None or not password_ok or account.email_verified_at is None:
        raise Unauthorized("Email or password is wrong, or the email is not confirmed yet")
    return account


@cache
def _dummy_password_hash() -> str:
    """A hash no password matches, made with the same parameters as real ones."""
    return hash_password(new_token("dummy"))


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
