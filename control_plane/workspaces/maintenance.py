"""An Enterprise workspace's weekly maintenance window: when rollouts may restart its server."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from control_plane.audit import service as audit
from control_plane.core.clock import utcnow
from control_plane.core.problems import Conflict, NotFound
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Tier, Workspace
from control_plane.workspaces.schemas import MaintenanceWindow


def set_window(session: Session, ws: Workspace, window: MaintenanceWindow | None, actor: str) -> Workspace:
    """Set (or, with None, clear) the workspace's window; audited, committed. 409 for a pooled (Professional)
    workspace, which follows the fleet's schedule; 404 for a deleted one."""
    if ws.lifecycle_state == Lifecycle.deleted:
        raise NotFound("Workspace")
    if ws.tier != Tier.enterprise:
        raise Conflict(
            "not-enterprise",
            "Only Enterprise workspaces choose a maintenance window; pooled workspaces follow the fleet's schedule",
            workspace_id=str(ws.id),
        )
    before: dict[str, Any] = {"maintenance_window": ws.maintenance_window}
    ws.maintenance_window = window.model_dump(mode="json") if window is not None else None
    ws.updated_at = utcnow()
    audit.record(
        session, actor=actor, action="workspace.maintenance_window", target_type="workspace", target_id=ws.id,
        organization_id=ws.organization_id, before=before, after={"maintenance_window": ws.maintenance_window},
    )  # fmt: skip
    session.commit()
    return ws
