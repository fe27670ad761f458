"""Who may move an organization to Enterprise (sales, admin) and who may follow a move (the organization's owners
and billing members, and staff who read contracts); another organization's move is a 404 (``service.organization``)."""

from __future__ import annotations

from typing import Annotated

from control_plane.core.authz import Permission, Principal
from control_plane.core.deps import authorized

MoveManager = Annotated[Principal, authorized(Permission.manage_contracts)]
MoveReader = Annotated[Principal, authorized(Permission.read_contracts)]
