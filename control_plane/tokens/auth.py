"""Who may manage API tokens: any authenticated caller, for their own account."""

from __future__ import annotations

from typing import Annotated

from control_plane.core.authz import Permission, Principal
from control_plane.core.deps import authorized

TokenManager = Annotated[Principal, authorized(Permission.manage_tokens)]
