"""Who may act on organizations: one dependency per action, named in each route's signature."""

from __future__ import annotations

from typing import Annotated

from control_plane.core.authz import Permission, Principal
from control_plane.core.deps import CurrentPrincipal, authorized

OrganizationReader = CurrentPrincipal
OrganizationCreator = Annotated[Principal, authorized(Permission.create_organization)]
