"""Rollout commands, whoever gives them (API route, console form, CLI verb): the change, the commit, then what the
workers must do (the engine's next pass; the reconciles of the workspaces a rollback sends back)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from enum import StrEnum

from sqlalchemy.orm import Session

from control_plane.reconciler.queue import Cause, defer_reconcile
from control_plane.rollouts import service
from control_plane.rollouts.models import Rollout, RolloutState
from control_plane.rollouts.schemas import RolloutCreate
from control_plane.rollouts.tasks import defer_advance


class Action(StrEnum):
    """What an operator may do to a rollout."""

    pause = "pause"
    resume = "resume"
    abort = "abort"
    rollback = "rollback"


VERBS: dict[Action, Callable[[Session, uuid.UUID, str, str], Rollout]] = {
    Action.pause: service.pause,
    Action.resume: service.resume,
    Action.abort: service.abort,
    Action.rollback: service.rollback,
}
OUTCOME = {
    Action.pause: RolloutState.paused,
    Action.resume: RolloutState.running,
    Action.abort: RolloutState.aborted,
    Action.rollback: RolloutState.rolled_back,
}


def allowed(state: RolloutState) -> list[Action]:
    """The actions a rollout in ``state`` accepts."""
    return [action for action in Action if OUTCOME[action] in service.STATE_MOVES[state]]


def start(session: Session, body: RolloutCreate, actor: str) -> Rollout:
    """Create a rollout; committed, then the engine's first pass is asked for."""
    rollout = service.create(session, body, actor)
    session.commit()
    defer_advance(rollout.id)
    return rollout


def act(session: Session, rollout_id: uuid.UUID, action: Action, reason: str, actor: str) -> Rollout:
    """Apply ``action`` (audited) and commit, then defer what it needs; a refusal (404, 409) changes nothing."""
    rollout = VERBS[action](session, rollout_id, reason, actor)
    sent_back = service.touched_workspaces(session, rollout_id) if action == Action.rollback else []
    session.commit()
    for workspace_id in sent_back:
        defer_reconcile(workspace_id, Cause.upgrade)
    defer_advance(rollout_id)
    return rollout
