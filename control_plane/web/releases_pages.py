"""The operator console's releases page (``/operations/releases``): the catalogue with how many workspaces want and
run each release, and the live fleet by desired and observed release, tier, cell and state; the page refreshes
both tables from ``/operations/releases/live`` (access: :mod:`control_plane.web.console`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from control_plane.core.deps import DbSession
from control_plane.releases import service
from control_plane.web.console import LIVE_SECONDS, json_reader, live_json, reader
from control_plane.web.sessions import Viewer
from control_plane.web.views import SettingsDep, render

router = APIRouter(include_in_schema=False)

PAGE = "/operations/releases"
LIVE = PAGE + "/live"
NONE = "—"


def releases_view(session: Session) -> dict[str, Any]:
    """The catalogue and the fleet as the page shows them (the template and the live JSON alike)."""
    releases = [
        {
            "version": r.version,
            "state": r.state.value,
            "image": r.image,
            "schema": f"{r.schema_min} to {r.schema_max}" if r.schema_max is not None else f"{r.schema_min} and up",
            "desired": r.desired,
            "observed": r.observed,
            "created": r.created_at.strftime("%Y-%m-%d %H:%M UTC"),
        }
        for r in service.listing(session)
    ]
    fleet = [
        {
            "desired": row.desired_release,
            "observed": row.observed_release or NONE,
            "tier": row.tier,
            "cell": row.cell or NONE,
            "state": row.lifecycle_state,
            "count": row.count,
        }
        for row in service.fleet(session)
    ]
    return {"releases": releases, "fleet": fleet}


@router.get(PAGE)
def releases_page(request: Request, session: DbSession, settings: SettingsDep, viewer: Viewer) -> Response:
    """The release catalogue and the fleet by release, refreshed live."""
    principal = reader(request, settings, viewer, PAGE)
    if isinstance(principal, Response):
        return principal
    context = {"view": releases_view(session), "live_url": LIVE, "live_seconds": LIVE_SECONDS, "console": "releases"}
    return render(request, settings, "operations_releases.html", context, viewer=viewer)


@router.get(LIVE)
def releases_live(session: DbSession, viewer: Viewer) -> Response:
    """The page's tables as JSON, for its polling."""
    principal = json_reader(viewer)
    if isinstance(principal, Response):
        return principal
    return live_json(releases_view(session))
