"""Who may act on Enterprise contracts: one dependency per action, named in each route's signature.

Roles are checked here (sales and admins create and renew contracts, finance and admins record payments;
customers' owners and billing members read their own); which organization's contract a caller sees is
``Principal.can_see`` (another organization's contract is a 404, so nothing leaks).
"""

from __future__ import annotations

from typing import Annotated

from control_plane.core.authz import Permission, Principal
from control_plane.core.deps import authorized

ContractReader = Annotated[Principal, authorized(Permission.read_contracts)]
ContractManager = Annotated[Principal, authorized(Permission.manage_contracts)]
PaymentRecorder = Annotated[Principal, authorized(Permission.record_payments)]
