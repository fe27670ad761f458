"""Organization actions: creation, members, and invitations that grant an organization role."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from control_plane.accounts import repository as accounts_repo
from control_plane.accounts.models import Account, Membership
from control_plane.audit import service as audit
from control_plane.core.authz import Principal, Role
from control_plane.core.clock import utcnow
from control_plane.core.problems import Conflict, Forbidden, NotFound, Problem
from control_plane.core.ratelimit import hit
from control_plane.core.security import NO_PASSWORD, has_password, hash_password, new_token, token_digest
from control_plane.core.settings import get_settings
from control_plane.mail import service as mail
from control_plane.organizations import repository
from control_plane.organizations.models import Invitation, Organization
from control_plane.tokens import service as tokens
from control_plane.workspaces import service as workspaces

INVITATION_TTL = timedelta(days=7)
INVITATION_TOKEN_PREFIX = "invite"
TOKEN_GUESS_WINDOW_SECONDS = 900
TOKEN_GUESS_ADDRESS_LIMIT = 50  # invitation links opened per client address per window
ROLE_WORDS = {Role.owner: "an owner", Role.billing: "a billing member (plans, invoices and payment)"}


def add(session: Session, name: str, owner: Account, actor: str) -> Organization:
    """Create an organization owned by ``owner`` (not committed)."""
    org = Organization(name=name)
    session.add(org)
    session.flush()
    accounts_repo.add_membership(session, org.id, owner.id, Role.owner)
    audit.record(
        session,
        actor=actor,
        action="organization.create",
        target_type="organization",
        target_id=org.id,
        organization_id=org.id,
        after={"name": name, "owner": owner.email},
    )
    return org


def create_for_owner_email(session: Session, principal: Principal, name: str, owner_email: str) -> Organization:
    """Sales flow: an organization whose owner account is made if it does not exist, with no password (not
    committed). An owner without a password of their own gets an owner invitation by mail: its link sets it."""
    email = accounts_repo.normalize_email(owner_email)
    owner = accounts_repo.account_by_email(session, email)
    if owner is None:
        owner = Account(email=email, password_hash=NO_PASSWORD)
        session.add(owner)
        session.flush()
    org = add(session, name, owner, principal.actor)
    if not has_password(owner.password_hash):
        invite(session, principal, org.id, email, Role.owner)
    return org


def first_owner(session: Session, organization_id: uuid.UUID) -> Account | None:
    """The organization's earliest owner (the one sales named), if it still has one."""
    return accounts_repo.first_owner(session, organization_id)


def visible(
    session: Session, principal: Principal, organization_id: uuid.UUID, *, for_update: bool = False
) -> Organization:
    """The organization if the caller may see it (404 otherwise); ``for_update`` makes its membership
    changes take turns."""
    org = repository.get(session, organization_id, for_update=for_update)
    if org is None or not principal.can_see(org.id):
        raise NotFound("Organization")
    return org


def list_visible(session: Session, principal: Principal, limit: int = 100) -> list[Organization]:
    """Organizations the caller may see."""
    query = select(Organization).order_by(Organization.created_at, Organization.id).limit(limit)
    if not principal.is_staff:
        query = query.where(Organization.id == principal.organization_id)
    return list(session.scalars(query))


def members(session: Session, principal: Principal, organization_id: uuid.UUID) -> list[tuple[Membership, str]]:
    """The organization's members with their emails, oldest first."""
    return accounts_repo.members_of(session, visible(session, principal, organization_id).id)


def remove_member(session: Session, principal: Principal, organization_id: uuid.UUID, account_id: uuid.UUID) -> None:
    """End an account's membership and revoke its tokens for the organization (committed).

    The last owner stays: an organization always has someone who can manage it (409).
    """
    org = visible(session, principal, organization_id, for_update=True)
    membership = accounts_repo.membership(session, org.id, account_id)
    if membership is None:
        raise NotFound("Member")
    if membership.role == Role.owner and accounts_repo.count_owners(session, org.id) == 1:
        raise Conflict("last-owner", "The last owner of an organization cannot be removed; invite another owner first")
    account = session.get(Account, account_id)
    assert account is not None
    session.delete(membership)
    tokens.revoke_in_organization(session, account_id, org.id, principal.actor)
    audit.record(
        session,
        actor=principal.actor,
        action="member.remove",
        target_type="account",
        target_id=account_id,
        organization_id=org.id,
        before={"email": account.email, "role": membership.role.value},
    )
    session.commit()


def invite(session: Session, principal: Principal, organization_id: uuid.UUID, email: str, role: Role) -> Invitation:
    """Invite ``email`` into the organization as ``role`` and mail the link (not committed).

    The link's token is random (256 bits), kept only as its digest, valid for 7 days and once. An open
    invitation to the same email is revoked (replaced); a member cannot be invited (409) unless their account
    has no password yet (the link is how they set one).
    """
    org = visible(session, principal, organization_id, for_update=True)
    email = accounts_repo.normalize_email(email)
    account = accounts_repo.account_by_email(session, email)
    if (
        account is not None
        and has_password(account.password_hash)
        and accounts_repo.membership(session, org.id, account.id) is not None
    ):
        raise Conflict("already-member", "This email belongs to a member of the organization already")
    for previous in repository.open_invitations_to(session, org.id, email):
        _revoke(session, previous, principal.actor, replaced=True)
    session.flush()  # the replaced invitation is closed before the new one takes its place
    token = new_token(INVITATION_TOKEN_PREFIX)
    invitation = Invitation(
        organization_id=org.id,
        email=email,
        role=role,
        token_digest=token_digest(token),
        expires_at=utcnow() + INVITATION_TTL,
    )
    session.add(invitation)
    session.flush()
    audit.record(
        session,
        actor=principal.actor,
        action="invitation.create",
        target_type="invitation",
        target_id=invitation.id,
        organization_id=org.id,
        after={"email": email, "role": role.value},
    )
    link = f"{get_settings().public_url}/invitations/{token}"
    mail.queue(
        session,
        email,
        "You are invited to an organization on Canopy",
        f"You are invited to join {org.name} on Canopy as {ROLE_WORDS[role]}.\n\n"
        f"Accept the invitation:\n\n{link}\n\n"
        "The link works once and for 7 days. If you did not expect this invitation, ignore this message.\n",
    )
    return invitation


def pending_invitations(session: Session, principal: Principal, organization_id: uuid.UUID) -> list[Invitation]:
    """The organization's invitations that can still be accepted, oldest first."""
    return repository.pending(session, visible(session, principal, organization_id).id, utcnow())


def revoke_invitation(
    session: Session, principal: Principal, organization_id: uuid.UUID, invitation_id: uuid.UUID
) -> None:
    """Revoke an invitation so that its link stops working (committed; revoking twice is harmless)."""
    org = visible(session, principal, organization_id)
    invitation = repository.invitation(session, org.id, invitation_id)
    if invitation is None:
        raise NotFound("Invitation")
    if invitation.accepted_at is not None:
        raise Conflict("invitation-accepted", "This invitation was accepted; remove the member instead")
    if invitation.revoked_at is None:
        _revoke(session, invitation, principal.actor, replaced=False)
    session.commit()


def _revoke(session: Session, invitation: Invitation, actor: str, *, replaced: bool) -> None:
    invitation.revoked_at = utcnow()
    audit.record(
        session,
        actor=actor,
        action="invitation.revoke",
        target_type="invitation",
        target_id=invitation.id,
        organization_id=invitation.organization_id,
        before={"email": invitation.email, "role": invitation.role.value},
        after={"replaced": replaced},
    )


class InvitationInvalid(Problem):
    """The link is unknown, expired, revoked or used (one answer for all)."""

    def __init__(self) -> None:
        super().__init__(
            404, "invitation-invalid", "Invalid invitation link", "This link is unknown or no longer works"
        )


def usable_invitation(session: Session, token: str, client_address: str, *, for_update: bool = False) -> Invitation:
    """The invitation a link's token opens, counted per client address first (RateLimited past the limit).

    Unknown, expired, revoked and used links all raise the same InvitationInvalid. ``for_update`` locks
    the invitation, so that one link is accepted once.
    """
    hit(session, f"invitation-addr:{client_address}", TOKEN_GUESS_ADDRESS_LIMIT, TOKEN_GUESS_WINDOW_SECONDS)
    invitation = repository.by_digest(session, token_digest(token), for_update=for_update)
    if (
        invitation is None
        or invitation.accepted_at is not None
        or invitation.revoked_at is not None
        or invitation.expires_at <= utcnow()
    ):
        raise InvitationInvalid()
    return invitation


def accept(session: Session, invitation: Invitation, account: Account) -> None:
    """Make ``account``, which must have the invited email, a member in the invitation's role (committed).

    An account that is a member already keeps its membership; the invitation is used up either way.
    """
    if account.email != invitation.email:
        raise Forbidden("This invitation is for another email address")
    if accounts_repo.membership(session, invitation.organization_id, account.id) is None:
        accounts_repo.add_membership(session, invitation.organization_id, account.id, invitation.role)
    invitation.accepted_at = utcnow()
    audit.record(
        session,
        actor=f"account:{account.id}",
        action="invitation.accept",
        target_type="invitation",
        target_id=invitation.id,
        organization_id=invitation.organization_id,
        after={"account_id": str(account.id), "role": invitation.role.value},
    )
    session.commit()


def accept_as_new_account(session: Session, invitation: Invitation, password: str) -> Account:
    """Create the invited email's account with ``password`` and accept (committed).

    The account is verified at once: following the mailed link proves the address.
    """
    account = Account(email=invitation.email, password_hash=hash_password(password), email_verified_at=utcnow())
    session.add(account)
    session.flush()
    accept(session, invitation, account)
    return account


def accept_setting_password(
    session: Session, invitation: Invitation, account: Account, password: str
) -> list[uuid.UUID]:
    """Give ``account`` (made by sales, with no password yet) its first ``password`` and accept (committed).

    The account is verified (the mailed link proves the address), and the workspaces waiting for it as their
    initial admin get its password hash; the caller defers their reconciles (returned), which hand the owner over
    as their first system admin.
    """
    if has_password(account.password_hash):
        raise Conflict("password-set", "This account has a password already; sign in to accept")
    account.password_hash = hash_password(password)
    account.email_verified_at = account.email_verified_at or utcnow()
    waiting = workspaces.hand_over_initial_admin(session, account.email, account.password_hash, f"account:{account.id}")
    accept(session, invitation, account)
    return waiting
