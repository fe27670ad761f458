"""Rollout actions as the API and the CLI run them: the action, the commit, then what the workers must do (the
reconciles of workspaces sent back, a pass of the engine)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy.orm import Session

from control_plane.reconciler.queue import Cause, defer_reconcile
from control_plane.rollouts import service
from control_plane.rollouts.models import Rollout
from control_plane.rollouts.schemas import RolloutCreate
from control_plane.rollouts.tasks import defer_advance

ACTIONS: dict[str, Callable[[Session, uuid.UUID, str, str], Rollout]] = {
    "pause": service.pause,
    "resume": service.resume,
    "abort": service.abort,
    "rollback": service.rollback,
}
"""What an operator may do to a rollout, by name."""


def start(session: Session, body: RolloutCreate, actor: str) -> Rollout:
    """Create a rollout; committed, then the engine's first pass is asked for."""
    rollout = service.create(session, body, actor)
    session.commit()
    defer_advance(rollout.id)
    return rollout


def act(session: Session, rollout_id: uuid.UUID, action: str, reason: str, actor: str) -> Rollout:
    """Pause, resume, abort or roll back a rollout; committed, then the workspaces sent back are reconciled and the
    engine's next pass is asked for."""
    rollout = ACTIONS[action](session, rollout_id, reason, actor)
    sent_back = service.touched_workspaces(session, rollout_id) if action == "rollback" else []
    session.commit()
    for workspace_id in sent_back:
        defer_reconcile(workspace_id, Cause.upgrade)
    defer_advance(rollout_id)
    return rollout
