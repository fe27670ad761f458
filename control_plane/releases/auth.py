"""Who may read the release catalogue and the fleet (staff who run it), and who may change releases, pins and
rollouts (operators and admins)."""

from __future__ import annotations

from typing import Annotated

from control_plane.core.authz import Permission, Principal
from control_plane.core.deps import authorized

ReleaseReader = Annotated[Principal, authorized(Permission.read_releases)]
ReleaseManager = Annotated[Principal, authorized(Permission.manage_releases)]
