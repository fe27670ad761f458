"""Who may act on an organization's billing: one dependency per action, named in each route's signature.

Roles are checked here (owners and billing members manage billing, support may read it); which organization's
billing a caller sees is ``Principal.can_see`` (another organization's billing is a 404, so nothing leaks).
"""

from __future__ import annotations

from typing import Annotated

from control_plane.core.authz import Permission, Principal
from control_plane.core.deps import authorized

BillingReader = Annotated[Principal, authorized(Permission.read_billing)]
BillingManager = Annotated[Principal, authorized(Permission.manage_billing)]
