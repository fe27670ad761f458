"""Who may act on organizations: one dependency per action, named in each route's signature.

Roles are checked here; which organization a caller sees is the service's ``visible`` (another
organization answers 404, so nothing leaks).
"""

from __future__ import annotations

from typing import Annotated

from control_plane.core.authz import Permission, Principal
from control_plane.core.deps import CurrentPrincipal, authorized

OrganizationReader = CurrentPrincipal
OrganizationCreator = Annotated[Principal, authorized(Permission.create_organization)]
MemberReader = Annotated[Principal, authorized(Permission.read_members)]
MemberManager = Annotated[Principal, authorized(Permission.manage_members)]
