"""Release changes as the API and the CLI make them: the change, the commit, then what the workers must do."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from control_plane.reconciler.queue import Cause, defer_reconcile
from control_plane.releases import service
from control_plane.releases.models import ReleaseState
from control_plane.rollouts.service import abort_rollouts_of
from control_plane.workspaces.models import Workspace


def change(session: Session, version: str, state: ReleaseState | None, notes: str | None, actor: str) -> int:
    """Promote or revoke a release and/or amend its notes, aborting the active rollouts of a revoked one; committed.
    Returns how many rollouts were aborted."""
    service.change(session, version, state, notes, actor)
    aborted = abort_rollouts_of(session, version, actor)
    session.commit()
    return aborted


def pin(session: Session, workspace_id: uuid.UUID, version: str, reason: str, actor: str) -> Workspace:
    """Pin a workspace to a release; committed, then its reconcile is deferred (it runs the release)."""
    ws = service.pin(session, workspace_id, version, reason, actor)
    session.commit()
    defer_reconcile(ws.id, Cause.operator)
    return ws


def unpin(session: Session, workspace_id: uuid.UUID, actor: str) -> Workspace:
    """Let rollouts take the workspace again; committed."""
    ws = service.unpin(session, workspace_id, actor)
    session.commit()
    return ws
