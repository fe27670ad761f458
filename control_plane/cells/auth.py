"""Who may manage cells (operators and admins)."""

from __future__ import annotations

from typing import Annotated

from control_plane.core.authz import Permission, Principal
from control_plane.core.deps import authorized

CellManager = Annotated[Principal, authorized(Permission.manage_cells)]
