"""Who may read the audit log (an owner reads its own organization's entries only)."""

from __future__ import annotations

from typing import Annotated

from control_plane.core.authz import Permission, Principal
from control_plane.core.deps import authorized

AuditReader = Annotated[Principal, authorized(Permission.read_audit)]
