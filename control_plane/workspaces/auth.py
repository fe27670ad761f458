"""Who may act on workspaces: one dependency per action, named in each route's signature.

Roles are checked here; which organization's workspaces a caller sees is the service's ``visible``
(another organization's workspace is a 404, so nothing leaks).
"""

from __future__ import annotations

from typing import Annotated

from control_plane.core.authz import Permission, Principal
from control_plane.core.deps import CurrentPrincipal, authorized

WorkspaceReader = CurrentPrincipal
WorkspaceCreator = Annotated[Principal, authorized(Permission.create_workspace)]
WorkspaceDeleter = Annotated[Principal, authorized(Permission.delete_workspace)]  # also cancels a deletion
WorkspacePurger = Annotated[Principal, authorized(Permission.purge_workspace)]
WorkspaceHibernator = Annotated[Principal, authorized(Permission.hibernate_workspace)]
WorkspaceWaker = Annotated[Principal, authorized(Permission.wake_workspace)]
WorkspaceScheduler = Annotated[Principal, authorized(Permission.set_maintenance_window)]
