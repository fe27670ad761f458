"""Who may use the sales API: one dependency per action, named in each route's signature.

Sales and admins create customers (they manage contracts, and only they may create Enterprise workspaces);
every role that reads contracts reads customers, customers' own roles only their own organization (another
organization is a 404, so nothing leaks).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from control_plane.core.authz import GRANTS, Permission, Principal, Role
from control_plane.core.deps import authorized

CustomerCreator = Annotated[Principal, authorized(Permission.manage_contracts)]
CustomerReader = Annotated[Principal, authorized(Permission.read_contracts)]

CONSOLE_PERMISSIONS = (Permission.manage_contracts, Permission.record_payments)
"""The sales console is for the roles that act on contracts: sales and admins (customers, contracts, renewals) and
finance (payments); anyone else gets the 404 page."""


def console_principal(role: Role | None, account_id: uuid.UUID) -> Principal | None:
    """The staff account acting in the sales console, when its role may (None otherwise)."""
    if role is None or not any(role in GRANTS[permission] for permission in CONSOLE_PERMISSIONS):
        return None
    return Principal(account_id=account_id, role=role, organization_id=None)


def may(principal: Principal, permission: Permission) -> bool:
    """Whether the console shows ``principal`` the form of an action needing ``permission``."""
    return principal.role in GRANTS[permission]
