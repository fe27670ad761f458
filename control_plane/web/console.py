"""Who may use the operator console's release and rollout pages, and how their live JSON answers.

Staff whose role reads releases (operators, admins, support) see the pages; only roles that manage releases
(operators, admins) get the buttons, and a form posted by any other role is refused with its reason. Anyone else
gets the 404 page, as on the operators' data page, so the console's existence does not leak; without a session the
browser is sent to sign in. The pages poll JSON routes authenticated by the same session cookie.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from control_plane.accounts.models import Account
from control_plane.core.authz import GRANTS, Permission, Principal
from control_plane.core.settings import Settings
from control_plane.web.access import staff_with
from control_plane.web.sessions import login_redirect
from control_plane.web.views import not_found

LIVE_SECONDS = 2
JSON_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def reader(request: Request, settings: Settings, viewer: Account | None, path: str) -> Principal | Response:
    """The viewer as a release reader; else sign in first (no session) or the 404 page."""
    if viewer is None:
        return login_redirect(path)
    principal = staff_with(viewer, Permission.read_releases)
    return not_found(request, settings, viewer) if principal is None else principal


def json_reader(viewer: Account | None) -> Principal | Response:
    """The viewer as a release reader; else 401 (no session: the page reloads into sign-in) or 404."""
    if viewer is None:
        return live_json({"error": "sign in"}, 401)
    principal = staff_with(viewer, Permission.read_releases)
    return live_json({"error": "not found"}, 404) if principal is None else principal


def may_manage(principal: Principal) -> bool:
    """Whether the principal's role may change rollouts (the page then shows the buttons)."""
    return principal.role in GRANTS[Permission.manage_releases]


def live_json(body: Any, status_code: int = 200) -> Response:
    """A JSON answer no cache keeps."""
    return JSONResponse(body, status_code=status_code, headers=JSON_HEADERS)
