"""Who may export workspaces and read their exports (whose download links give the whole workspace away).

Roles are checked here; which organization's workspaces a caller sees is ``workspaces.service.visible`` (another
organization's workspace, and so its exports, is a 404).
"""

from __future__ import annotations

from typing import Annotated

from control_plane.core.authz import Permission, Principal
from control_plane.core.deps import authorized

Exporter = Annotated[Principal, authorized(Permission.export_workspace)]
