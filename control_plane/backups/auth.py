"""Who may back workspaces up, restore them, and read their backups (roles; which organization's workspaces a caller
sees is ``workspaces.service.visible``: another organization's workspace, and so its backups, is a 404)."""

from __future__ import annotations

from typing import Annotated

from control_plane.core.authz import Permission, Principal
from control_plane.core.deps import authorized

BackupTaker = Annotated[Principal, authorized(Permission.back_up_workspace)]
Restorer = Annotated[Principal, authorized(Permission.restore_workspace)]
BackupReader = Annotated[Principal, authorized(Permission.read_backups)]
