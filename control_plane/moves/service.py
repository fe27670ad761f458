"""Moving a Professional workspace up to Enterprise: announce a downtime window, then at the window stop the
workspace, copy its data (database and files) into a new Enterprise silo of the same organization at the same
address, retire the old one, and end the Professional subscription.

Each step is one transaction on the move's row (its ``state``, its ``steps``), taken by :func:`advance`, which the
move's procrastinate task calls at the window and again while a step waits on the reconciler; rerunning it after a
crash takes the step again from what the row and the workspaces say:

- ``scheduled`` -> ``stopping``: the Professional workspace goes ``pending_deletion`` (its usual grace, so it can
  still be recovered): its reconcile stops its server, then takes its final backup, so no write is lost;
- ``stopping`` -> ``copying``: once that final backup is completed, the old workspace gives its address up (it is
  renamed to ``retired_slug``) and a new Enterprise workspace takes it, restored from the final backup before its
  server first starts (``backups.service.start_restore`` in clone mode, tier changed). Users and their passwords come
  with the database, so the owner stays the workspace's admin;
- ``copying`` -> ``cut_over`` -> ``done``: once the restore completed and the new workspace serves, the Professional
  subscription is cancelled (unless another Professional workspace of the organization lives on): seats stop being
  counted once the old workspace is pending deletion, so only the days used are charged. The owners are told.

A step that cannot go on ends the move ``failed`` with the reason. When the copy fails (a corrupt final backup), the
move is rolled back: the new workspace gives the address up and goes pending deletion, and the old one takes its
address back and runs again in the state it left; nothing was written in between (``runbooks/move-to-enterprise.md``).
"""

from __future__ import annotations

import enum
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from billing.engine.status import BillingStatus
from control_plane.accounts import repository as accounts
from control_plane.audit import service as audit
from control_plane.backups import repository as backups
from control_plane.backups.models import BackupState, RestoreState
from control_plane.backups.schemas import CloneRestore
from control_plane.backups.service import start_restore
from control_plane.contracts import service as contracts
from control_plane.core.authz import Principal
from control_plane.core.clock import utcnow
from control_plane.core.problems import Conflict, InvalidInput, NotFound, Problem
from control_plane.mail import service as mail
from control_plane.moves import repository
from control_plane.moves.models import OPEN_MOVE_STATES, EnterpriseMove, MoveState
from control_plane.moves.schemas import MoveRequest
from control_plane.organizations import repository as organizations
from control_plane.reconciler.queue import Cause
from control_plane.subscriptions import repository as subscriptions
from control_plane.subscriptions import service as billing
from control_plane.workspaces import repository as workspaces_repository
from control_plane.workspaces import service as workspaces
from control_plane.workspaces.lifecycle import Lifecycle, cancel_target
from control_plane.workspaces.models import Tier, Workspace

WORKER_ACTOR = "worker"
MOVABLE_STATES = frozenset(
    {Lifecycle.trialing, Lifecycle.active, Lifecycle.past_due, Lifecycle.suspended, Lifecycle.hibernated}
)
"""States of a Professional workspace that can be moved (it has data and may go pending deletion)."""
START_SLACK = timedelta(minutes=1)
"""How far in the past a window may start (a request for "now" takes a moment to arrive)."""
MAX_LEAD = timedelta(days=365)
"""How far ahead a window may be announced."""
RETIRED_PREFIX_LENGTH = 47
MOVING_RETRY_AFTER_SECONDS = 30


class Outcome(enum.Enum):
    """What a step did: moved on (take the next one now), waits on the reconciler (try again soon), or ended."""

    advanced = "advanced"
    waiting = "waiting"
    ended = "ended"


@dataclass
class Progress:
    """A step's outcome, and the workspaces whose reconcile to defer once it is committed."""

    outcome: Outcome
    reconcile: list[tuple[uuid.UUID, Cause]] = field(default_factory=list)
    state: MoveState | None = None
    """The move's state after the step (None: there was no open move)."""


def snapshot(move: EnterpriseMove) -> dict[str, Any]:
    """The audited fields of a move."""
    return {
        "source_workspace_id": str(move.source_workspace_id),
        "target_workspace_id": str(move.target_workspace_id) if move.target_workspace_id else None,
        "slug": move.slug,
        "retired_slug": move.retired_slug,
        "downtime_start": move.downtime_start.isoformat(),
        "downtime_minutes": move.downtime_minutes,
        "state": move.state.value,
        "error": move.error,
    }


def _record(session: Session, move: EnterpriseMove, state: MoveState, actor: str, error: str | None = None) -> None:
    """Move on to ``state`` (kept in ``steps``), audited as ``enterprise_move.<state>``."""
    now = utcnow()
    move.state, move.error, move.updated_at = state, error, now
    move.steps = [*move.steps, {"state": state.value, "at": now.isoformat()}]
    audit.record(
        session,
        actor=actor,
        action=f"enterprise_move.{state.value}",
        target_type="enterprise_move",
        target_id=move.id,
        organization_id=move.organization_id,
        after=snapshot(move),
    )


def _tell_owners(session: Session, organization_id: uuid.UUID, subject: str, body: str) -> None:
    for address in accounts.owner_emails(session, organization_id):
        mail.queue(session, address, subject, body)


def being_moved() -> Problem:
    """What a request to an address in its move's downtime window gets at once: ``503 workspace-moving`` with
    ``Retry-After`` (the workspace comes back at the same address, on Enterprise)."""
    detail = "The workspace is moving to Enterprise; try again"
    problem = Problem(503, "workspace-moving", "Service unavailable", detail)
    problem.headers["Retry-After"] = str(MOVING_RETRY_AFTER_SECONDS)
    return problem


# --- requests and reads ------------------------------------------------------------------------------------------


def organization(session: Session, principal: Principal, organization_id: uuid.UUID) -> None:
    """404 unless the organization exists and the caller may see it."""
    if not principal.can_see(organization_id) or organizations.get(session, organization_id) is None:
        raise NotFound("Organization")


def _movable(session: Session, organization_id: uuid.UUID, workspace_id: uuid.UUID) -> Workspace:
    """The organization's Professional workspace to move, locked (404 if not the organization's, 409 otherwise)."""
    ws = workspaces_repository.get(session, workspace_id, for_update=True)
    if ws is None or ws.organization_id != organization_id:
        raise NotFound("Workspace")
    if ws.tier is Tier.enterprise:
        raise Conflict("already-enterprise", "This workspace is already an Enterprise silo")
    if contracts.for_organization(session, organization_id) is None:
        raise Conflict("contract-required", "The organization needs an Enterprise contract before it moves")
    if ws.lifecycle_state not in MOVABLE_STATES:
        raise Conflict(
            "workspace-not-movable",
            f"The workspace is {ws.lifecycle_state.value}: only a workspace with data that is not being deleted moves",
        )
    current = repository.open_of_source(session, ws.id)
    if current is not None:
        raise Conflict("move-in-progress", "This workspace is already being moved", move_id=str(current.id))
    return ws


def _announce(session: Session, move: EnterpriseMove) -> None:
    end = move.downtime_start + timedelta(minutes=move.downtime_minutes)
    body = (
        f"Your Canopy workspace {move.slug} moves to its own Enterprise environment.\n\n"
        f"Downtime window: {move.downtime_start:%A %d %B %Y %H:%M} to {end:%H:%M} UTC "
        f"({move.downtime_minutes} minutes). During it the workspace is unavailable; everything posted before it "
        "starts is carried over, with every file, user and password.\n"
        "Afterwards it answers at the same address.\n"
    )
    _tell_owners(session, move.organization_id, f"Scheduled downtime: {move.slug} moves to Enterprise", body)


def request(session: Session, principal: Principal, organization_id: uuid.UUID, body: MoveRequest) -> EnterpriseMove:
    """:func:`schedule` for a caller allowed to (another organization's is a 404)."""
    organization(session, principal, organization_id)
    return schedule(session, organization_id, body, principal.actor)


def schedule(session: Session, organization_id: uuid.UUID, body: MoveRequest, actor: str) -> EnterpriseMove:
    """Schedule the move of ``body.workspace_id`` at ``body.downtime_start`` and mail the owners the window;
    audited, committed (the caller defers :func:`tasks.defer_move`). 404 for a workspace of another organization,
    409 without a contract, for an Enterprise workspace, one that cannot move or is being moved; 422 for a window in
    the past or more than a year ahead."""
    now = utcnow()
    if not now - START_SLACK <= body.downtime_start <= now + MAX_LEAD:
        raise InvalidInput("downtime_start", f"must be between now and {MAX_LEAD.days} days from now")
    ws = _movable(session, organization_id, body.workspace_id)
    move = EnterpriseMove(
        organization_id=organization_id,
        source_workspace_id=ws.id,
        slug=ws.slug,
        retired_slug=f"{ws.slug[:RETIRED_PREFIX_LENGTH]}-moved-{secrets.token_hex(4)}",
        region=body.region,
        downtime_start=body.downtime_start,
        downtime_minutes=body.downtime_minutes,
        state=MoveState.scheduled,
        steps=[],
        requested_by=actor,
        created_at=utcnow(),
    )
    session.add(move)
    session.flush()
    _record(session, move, MoveState.scheduled, actor)
    _announce(session, move)
    session.commit()
    return move


def newest(session: Session, principal: Principal, organization_id: uuid.UUID) -> EnterpriseMove:
    """The organization's newest move; 404 if it has none or the caller may not see it."""
    organization(session, principal, organization_id)
    move = repository.newest_of(session, organization_id)
    if move is None:
        raise NotFound("Enterprise move")
    return move


# --- the steps, at the window ------------------------------------------------------------------------------------


def _fail(session: Session, move: EnterpriseMove, reason: str) -> Progress:
    _record(session, move, MoveState.failed, WORKER_ACTOR, error=reason)
    body = (
        f"The move of {move.slug} to Enterprise stopped: {reason}\n"
        "Our team has been told and will contact you with a new window.\n"
    )
    _tell_owners(session, move.organization_id, f"The move of {move.slug} to Enterprise is delayed", body)
    return Progress(Outcome.ended)


def _source(session: Session, move: EnterpriseMove) -> Workspace:
    ws = workspaces_repository.get(session, move.source_workspace_id, for_update=True)
    assert ws is not None  # the move's foreign key cascades
    return ws


def _stop(session: Session, move: EnterpriseMove) -> Progress:
    """The old workspace goes pending deletion: its reconcile stops its server, then takes its final backup."""
    ws = _source(session, move)
    if ws.lifecycle_state not in MOVABLE_STATES:
        return _fail(session, move, f"the workspace became {ws.lifecycle_state.value} before the window")
    workspaces.transition(session, ws, Lifecycle.pending_deletion, WORKER_ACTOR, action="workspace.enterprise_move")
    _record(session, move, MoveState.stopping, WORKER_ACTOR)
    return Progress(Outcome.advanced, [(ws.id, Cause.deletion)])


def _copy(session: Session, move: EnterpriseMove) -> Progress:
    """Once the final backup (taken after the server stopped) is completed: the old workspace gives its address up
    and a new Enterprise workspace takes it, restored from that backup."""
    ws = _source(session, move)
    if ws.lifecycle_state is not Lifecycle.pending_deletion:
        return _fail(session, move, f"the workspace's deletion was cancelled (it is {ws.lifecycle_state.value})")
    done = frozenset({BackupState.completed})
    backup = backups.final_of(session, ws.id, done, ws.deletion_requested_at)
    if backup is None:
        return Progress(Outcome.waiting)
    ws.slug = move.retired_slug
    session.flush()
    clone = CloneRestore(mode="clone", slug=move.slug, display_name=ws.display_name)
    restore = start_restore(session, ws, backup, clone, WORKER_ACTOR, None, tier=Tier.enterprise, region=move.region)
    move.backup_id, move.target_workspace_id = backup.id, restore.target_workspace_id
    _record(session, move, MoveState.copying, WORKER_ACTOR)
    return Progress(Outcome.advanced, [(restore.target_workspace_id, Cause.restore)])


def _retire_target(session: Session, move: EnterpriseMove) -> list[tuple[uuid.UUID, Cause]]:
    """The Enterprise workspace of a failed copy gives the address up and is deleted (its usual grace)."""
    assert move.target_workspace_id is not None
    target = workspaces_repository.get(session, move.target_workspace_id, for_update=True)
    if target is None or target.lifecycle_state in (Lifecycle.pending_deletion, Lifecycle.deleted):
        return []
    target.slug = f"{move.slug[:RETIRED_PREFIX_LENGTH]}-failed-{secrets.token_hex(4)}"
    workspaces.transition(session, target, Lifecycle.pending_deletion, WORKER_ACTOR, action="workspace.move_failed")
    session.flush()
    return [(target.id, Cause.deletion)]


def _roll_back(session: Session, move: EnterpriseMove, reason: str) -> Progress:
    """The copy failed: the Professional workspace takes its address back and runs again in the state it left
    (its deletion cancelled, unless its purge has begun); the move fails with ``reason``."""
    reconcile = _retire_target(session, move)
    ws = _source(session, move)
    if ws.lifecycle_state is Lifecycle.pending_deletion and not workspaces.purge_started(ws, utcnow()):
        ws.slug = move.slug
        back = cancel_target(ws.lifecycle_state, ws.resume_state)
        workspaces.transition(session, ws, back, WORKER_ACTOR, action="workspace.deletion_cancelled")
        reconcile.append((ws.id, Cause.lifecycle))
    progress = _fail(session, move, reason)
    progress.reconcile = reconcile
    return progress


def _serving(target: Workspace) -> bool:
    return (
        target.lifecycle_state is Lifecycle.active
        and target.observed_generation >= target.generation
        and any(c["type"] == "Available" and c["status"] == "True" for c in target.conditions or [])
    )


def _cut_over(session: Session, move: EnterpriseMove) -> Progress:
    """Once the new workspace holds the copy and serves at the address, the move is cut over."""
    assert move.target_workspace_id is not None
    restore = backups.newest_restore_into(session, move.target_workspace_id)
    if restore is not None and restore.state is RestoreState.failed:
        return _roll_back(session, move, f"the copy into the Enterprise workspace failed: {restore.error}")
    target = session.get(Workspace, move.target_workspace_id)
    if restore is None or restore.state is not RestoreState.completed or target is None or not _serving(target):
        return Progress(Outcome.waiting)
    _record(session, move, MoveState.cut_over, WORKER_ACTOR)
    return Progress(Outcome.advanced)


def _finish(session: Session, move: EnterpriseMove) -> Progress:
    """End the Professional subscription (unless another Professional workspace lives on) and tell the owners."""
    _record(session, move, MoveState.done, WORKER_ACTOR)
    body = (
        f"Your workspace {move.slug} now runs in its own Enterprise environment, at the same address, with all its "
        "posts, files, users and passwords.\nYour Professional plan ends: you are charged only for the days used.\n"
    )
    _tell_owners(session, move.organization_id, f"{move.slug} is now on Enterprise", body)
    sub = subscriptions.get(session, move.organization_id)
    others = repository.other_live_professional(session, move.organization_id, move.source_workspace_id)
    if sub is not None and others == 0 and sub.cancel_at is None and sub.status is not BillingStatus.canceled:
        changed = billing.cancel(session, move.organization_id, WORKER_ACTOR, utcnow())
        return Progress(Outcome.ended, [(workspace_id, Cause.billing) for workspace_id in changed])
    return Progress(Outcome.ended)


STEPS: dict[MoveState, Callable[[Session, EnterpriseMove], Progress]] = {
    MoveState.scheduled: _stop,
    MoveState.stopping: _copy,
    MoveState.copying: _cut_over,
    MoveState.cut_over: _finish,
}


def advance(session: Session, move_id: uuid.UUID) -> Progress:
    """Take the move's next step (in the caller's transaction, which commits it); ``ended`` when it is over."""
    move = repository.get(session, move_id, for_update=True)
    if move is None or move.state not in OPEN_MOVE_STATES:
        return Progress(Outcome.ended)
    progress = STEPS[move.state](session, move)
    progress.state = move.state
    return progress
