"""Workspace actions: create, transition, hibernate, wake, delete (scheduled, cancellable, purged earlier by an
operator), read with per-organization authorization."""

from __future__ import annotations

import base64
import unicodedata
import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from control_plane.accounts import repository as accounts_repo
from control_plane.accounts.models import Account
from control_plane.audit import service as audit
from control_plane.cells.service import place_workspace
from control_plane.core.authz import Principal
from control_plane.core.clock import utcnow
from control_plane.core.problems import Conflict, InvalidInput, NotFound
from control_plane.core.security import has_password
from control_plane.core.settings import Settings, get_settings
from control_plane.organizations.models import Organization
from control_plane.workspaces import repository, slugs
from control_plane.workspaces.lifecycle import (
    Lifecycle,
    NotPendingDeletion,
    cancel_target,
    check_transition,
    resume_state_on_entering,
    wake_target,
)
from control_plane.workspaces.models import LATE_ADMIN_OUTPUT, Tier, Workspace
from control_plane.workspaces.schemas import SlugAvailability

MAX_PAGE = 200
MAX_PURGE_REASON = 1000
LINE_BREAKS_AND_TABS = frozenset("\t\n\r")
VISIBLE_CATEGORIES = ("L", "N", "P", "S")  # letters, digits, punctuation, symbols


def snapshot(ws: Workspace) -> dict[str, Any]:
    """The audited fields of a workspace."""
    return {
        "slug": ws.slug,
        "tier": ws.tier.value,
        "lifecycle_state": ws.lifecycle_state.value,
        "resume_state": ws.resume_state.value if ws.resume_state else None,
        "desired_release": ws.desired_release,
        "generation": ws.generation,
        "purge_after": ws.purge_after.isoformat() if ws.purge_after else None,
    }


def availability(session: Session, raw_slug: str) -> SlugAvailability:
    """Whether ``raw_slug`` is a valid, unreserved and free address."""
    verdict = slugs.check_format(raw_slug)
    if not verdict.valid:
        return SlugAvailability(slug=verdict.slug, available=False, reason=verdict.reason)
    if repository.live_by_slug(session, verdict.slug) is not None:
        return SlugAvailability(slug=verdict.slug, available=False, reason="is already taken")
    return SlugAvailability(slug=verdict.slug, available=True, reason=None)


def claim_slug(session: Session, raw_slug: str, field: str = "slug") -> str:
    """The normalized slug, or a 422/409 explaining why it cannot be used."""
    verdict = availability(session, raw_slug)
    if verdict.available:
        return verdict.slug
    if verdict.reason == "is already taken":
        raise Conflict("slug-taken", f"The address {verdict.slug} is already taken", field=field)
    raise InvalidInput(field, f"The address {verdict.reason}")


def initial_admin_for(session: Session, principal: Principal, organization_id: uuid.UUID) -> tuple[str, str | None]:
    """Who becomes a new workspace's first system admin: the calling owner, or for staff the organization's first
    owner (email, and password hash once they have a password: :func:`hand_over_initial_admin` brings it later)."""
    if session.get(Organization, organization_id) is None:
        raise InvalidInput("organization_id", "names no organization")
    account = session.get(Account, principal.account_id) if not principal.is_staff else None
    account = account or accounts_repo.first_owner(session, organization_id)
    if account is None:
        raise Conflict("no-owner", "The organization has no owner to administer the workspace", field="organization_id")
    return account.email, account.password_hash if has_password(account.password_hash) else None


def new_workspace(
    session: Session,
    *,
    organization_id: uuid.UUID,
    slug: str,
    display_name: str | None,
    tier: Tier,
    region: str | None,
    state: Lifecycle,
    actor: str,
    initial_admin: tuple[str, str | None] | None = None,
) -> Workspace:
    """Add a workspace row (not committed) and its audit entry.

    With the aws provider a professional workspace is placed in a cell here, in the transaction that inserts it
    (the cells stay locked until the caller commits); a full region is a 503 ``no-cell-capacity`` problem.
    """
    settings = get_settings()
    if session.get(Organization, organization_id) is None:
        raise InvalidInput("organization_id", "names no organization")
    claimed = claim_slug(session, slug)
    region = region or settings.default_region
    cell = place_workspace(session, tier, region) if settings.provider == "aws" else None
    ws = Workspace(
        organization_id=organization_id,
        slug=claimed,
        display_name=display_name or slug,
        tier=tier,
        region=region,
        cell=cell.name if cell else None,
        desired_release=settings.default_release,
        lifecycle_state=state,
        conditions=[],
        outputs={},
        initial_admin_email=initial_admin[0] if initial_admin else None,
        initial_admin_password_hash=initial_admin[1] if initial_admin else None,
    )
    session.add(ws)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="workspace.create",
        target_type="workspace",
        target_id=ws.id,
        organization_id=organization_id,
        after=snapshot(ws),
    )
    return ws


def hand_over_initial_admin(session: Session, email: str, password_hash: str, actor: str) -> list[uuid.UUID]:
    """Give the workspaces waiting for ``email`` as their initial admin its first password hash (audited, not
    committed); the caller defers their reconciles once committed, which hand the admin over to each server."""
    waiting = repository.waiting_for_admin(session, email)
    for ws in waiting:
        ws.initial_admin_password_hash = password_hash
        ws.outputs = {**(ws.outputs or {}), LATE_ADMIN_OUTPUT: email}
        audit.record(
            session,
            actor=actor,
            action="workspace.initial_admin",
            target_type="workspace",
            target_id=ws.id,
            organization_id=ws.organization_id,
            after={"initial_admin": email},
        )
    return [ws.id for ws in waiting]


def purge_date(settings: Settings, ws: Workspace, now: datetime) -> datetime:
    """When ``ws``, deleted at ``now``, would be purged: after the grace period of the state deletion leaves (a
    trial's is shorter)."""
    leaving = resume_state_on_entering(ws.lifecycle_state, ws.resume_state, Lifecycle.pending_deletion)
    trial = leaving == Lifecycle.trialing
    return now + timedelta(days=settings.trial_deletion_grace_days if trial else settings.deletion_grace_days)


def transition(session: Session, ws: Workspace, target: Lifecycle, actor: str, action: str | None = None) -> None:
    """Move ``ws`` to ``target`` if the lifecycle allows it (409 otherwise); audited as ``action`` (default
    ``workspace.<target>``), not committed. Entering a pause (``hibernated``, ``restoring``,
    ``pending_deletion``) remembers the
    state to resume; entering ``pending_deletion`` schedules the purge, leaving it forgets that."""
    check_transition(ws.lifecycle_state, target)
    before = snapshot(ws)
    now = utcnow()
    if target == Lifecycle.pending_deletion:
        ws.deletion_requested_at, ws.purge_after = now, purge_date(get_settings(), ws, now)
    elif ws.lifecycle_state == Lifecycle.pending_deletion:
        ws.deletion_requested_at, ws.purge_after = None, None
    ws.resume_state = resume_state_on_entering(ws.lifecycle_state, ws.resume_state, target)
    ws.lifecycle_state = target
    ws.generation += 1
    ws.updated_at = now
    ws.next_attempt_at = None
    ws.reconcile_attempts = 0
    audit.record(
        session,
        actor=actor,
        action=action or f"workspace.{target.value}",
        target_type="workspace",
        target_id=ws.id,
        organization_id=ws.organization_id,
        before=before,
        after=snapshot(ws),
    )


def visible(session: Session, principal: Principal, workspace_id: uuid.UUID, *, for_update: bool = False) -> Workspace:
    """The workspace if the caller may see it; another organization's is a 404."""
    ws = repository.get(session, workspace_id, for_update=for_update)
    if ws is None or not principal.can_see(ws.organization_id):
        raise NotFound("Workspace")
    return ws


def delete_row(session: Session, ws: Workspace, actor: str) -> None:
    """Schedule the deletion of ``ws``: ``pending_deletion`` until its purge date (its server stops, its data stays,
    the reconciler takes a final backup, then tears it down when the date passes); committed."""
    transition(session, ws, Lifecycle.pending_deletion, actor)
    session.commit()


def purge_started(ws: Workspace, now: datetime) -> bool:
    """Whether the workspace's purge date has passed: from then on the reconciler may be tearing it down."""
    return ws.lifecycle_state == Lifecycle.pending_deletion and ws.purge_after is not None and ws.purge_after <= now


def cancel_deletion_row(session: Session, ws: Workspace, actor: str) -> None:
    """Return a workspace pending deletion to the state it was deleted from (409 once its purge has begun or it is
    deleted); committed."""
    target = cancel_target(ws.lifecycle_state, ws.resume_state)
    if purge_started(ws, utcnow()):
        raise Conflict(
            "purge-started",
            "This workspace is being purged: its deletion can no longer be cancelled",
            current_state=ws.lifecycle_state.value,
            purge_after=ws.purge_after.isoformat() if ws.purge_after else None,
        )
    transition(session, ws, target, actor, action="workspace.deletion_cancelled")
    session.commit()


def check_purge_reason(reason: str) -> None:
    """422 unless ``reason`` says something: 1 to 1000 characters, at least one visible, no control character (a
    tab or a line break aside: no terminal escape or NUL reaches the audit log)."""
    if not 1 <= len(reason) <= MAX_PURGE_REASON:
        raise InvalidInput("reason", f"must be 1 to {MAX_PURGE_REASON} characters long")
    if any(unicodedata.category(c) == "Cc" and c not in LINE_BREAKS_AND_TABS for c in reason):
        raise InvalidInput("reason", "must not contain control characters")
    if not any(unicodedata.category(c).startswith(VISIBLE_CATEGORIES) for c in reason):
        raise InvalidInput("reason", "must say why, in words")


def purge_row(session: Session, ws: Workspace, actor: str, reason: str) -> None:
    """End the grace period of a workspace pending deletion now (the reconciler purges it next); audited with the
    ``reason`` (422 unless :func:`check_purge_reason` accepts it), committed."""
    check_purge_reason(reason)
    if ws.lifecycle_state != Lifecycle.pending_deletion:
        raise NotPendingDeletion(ws.lifecycle_state, "purged")
    before = snapshot(ws)
    now = utcnow()
    ws.purge_after = min(ws.purge_after or now, now)
    ws.next_attempt_at = None
    ws.updated_at = now
    audit.record(
        session,
        actor=actor,
        action="workspace.purge",
        target_type="workspace",
        target_id=ws.id,
        organization_id=ws.organization_id,
        before=before,
        after={**snapshot(ws), "reason": reason},
    )
    session.commit()


def request_deletion(session: Session, principal: Principal, workspace_id: uuid.UUID) -> Workspace:
    """:func:`delete_row` for a caller allowed to (the route defers the reconcile that stops the server)."""
    ws = visible(session, principal, workspace_id, for_update=True)
    delete_row(session, ws, principal.actor)
    return ws


def cancel_deletion(session: Session, principal: Principal, workspace_id: uuid.UUID) -> Workspace:
    """:func:`cancel_deletion_row` for a caller allowed to (the route defers the reconcile that starts it again)."""
    ws = visible(session, principal, workspace_id, for_update=True)
    cancel_deletion_row(session, ws, principal.actor)
    return ws


def purge(session: Session, principal: Principal, workspace_id: uuid.UUID, reason: str) -> Workspace:
    """:func:`purge_row` for a caller allowed to (the route defers the reconcile that purges it)."""
    ws = visible(session, principal, workspace_id, for_update=True)
    purge_row(session, ws, principal.actor, reason)
    return ws


def hibernate_row(session: Session, ws: Workspace, actor: str) -> None:
    """Hibernate a trialing, active, past-due or suspended workspace (its server stops, its data stays); committed."""
    transition(session, ws, Lifecycle.hibernated, actor)
    session.commit()


def wake_row(session: Session, ws: Workspace, actor: str) -> None:
    """Return a hibernated workspace to the state it was hibernated from; committed."""
    transition(session, ws, wake_target(ws.lifecycle_state, ws.resume_state), actor, action="workspace.wake")
    session.commit()


def hibernate(session: Session, principal: Principal, workspace_id: uuid.UUID) -> Workspace:
    """:func:`hibernate_row` for a caller allowed to (the route defers the reconcile that stops the server)."""
    ws = visible(session, principal, workspace_id, for_update=True)
    hibernate_row(session, ws, principal.actor)
    return ws


def wake(session: Session, principal: Principal, workspace_id: uuid.UUID) -> Workspace:
    """:func:`wake_row` for a caller allowed to (the route defers the reconcile that starts the server)."""
    ws = visible(session, principal, workspace_id, for_update=True)
    wake_row(session, ws, principal.actor)
    return ws


def encode_cursor(ws: Workspace) -> str:
    """Opaque cursor pointing after ``ws``."""
    raw = f"{ws.created_at.isoformat()}|{ws.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """Inverse of :func:`encode_cursor`; 422 on garbage."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, _, ident = raw.partition("|")
        return datetime.fromisoformat(created), uuid.UUID(ident)
    except ValueError as exc:
        raise InvalidInput("cursor", "is not a cursor this API returned") from exc


def list_page(
    session: Session, principal: Principal, filters: repository.WorkspaceFilter, *, cursor: str | None, limit: int
) -> tuple[list[Workspace], str | None]:
    """A page of the workspaces the caller may see that match ``filters``, and the next cursor."""
    if not principal.is_staff:
        if filters.organization_id not in (None, principal.organization_id):
            return [], None
        filters = replace(filters, organization_id=principal.organization_id)
    limit = max(1, min(limit, MAX_PAGE))
    rows = repository.page(session, filters, after=decode_cursor(cursor) if cursor else None, limit=limit + 1)
    next_cursor = encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return rows[:limit], next_cursor
