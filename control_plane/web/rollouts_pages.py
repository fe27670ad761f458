"""The operator console's rollout pages: ``/operations/rollouts`` (the newest rollouts) and
``/operations/rollouts/{id}`` (progress wave by wave with failures and their reasons, refreshed live from
``.../live``, and the Pause / Resume / Abort / Roll back forms its state allows).

The forms post with the page's CSRF token and a reason, and go through :func:`control_plane.rollouts.commands.act`,
as the API does (audited, committed, then the workers are asked to act); a refusal (409, 403, 422) is the page
again with its reason. Access: :mod:`control_plane.web.console`.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from control_plane.accounts.models import Account
from control_plane.core.authz import Permission, Principal
from control_plane.core.deps import DbSession
from control_plane.core.problems import NotFound, Problem
from control_plane.core.settings import Settings
from control_plane.rollouts import repository, service
from control_plane.rollouts.commands import Action, act
from control_plane.rollouts.schemas import RolloutAction
from control_plane.web.console import LIVE_SECONDS, json_reader, live_json, may_manage, reader
from control_plane.web.rollout_view import rollout_view
from control_plane.web.sessions import Viewer
from control_plane.web.views import FORM_EXPIRED, SettingsDep, form_token_ok, not_found, redirect, render

router = APIRouter(include_in_schema=False)

LIST = "/operations/rollouts"
LISTED = 50
FormText = Annotated[str, Form(max_length=200)]


def page_path(rollout_id: uuid.UUID | str) -> str:
    """A rollout's page."""
    return f"{LIST}/{rollout_id}"


@router.get(LIST)
def rollouts_page(request: Request, session: DbSession, settings: SettingsDep, viewer: Viewer) -> Response:
    """The newest rollouts with their state and progress."""
    principal = reader(request, settings, viewer, LIST)
    if isinstance(principal, Response):
        return principal
    rows = [rollout_view(service.rollout_out(session, r), manage=False) for r in repository.recent(session, LISTED)]
    context = {"rows": rows, "console": "rollouts", "page_path": page_path}
    return render(request, settings, "operations_rollouts.html", context, viewer=viewer)


def _rollout_id(raw: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw)
    except ValueError:
        return None


def _page(
    request: Request,
    session: Session,
    settings: Settings,
    viewer: Account,
    principal: Principal,
    rollout_id: uuid.UUID,
    *,
    alert: str | None = None,
    status_code: int = 200,
) -> Response:
    rollout = repository.get(session, rollout_id)
    if rollout is None:
        return not_found(request, settings, viewer)
    view = rollout_view(service.rollout_out(session, rollout), manage=may_manage(principal))
    context = {
        "view": view,
        "live_url": page_path(rollout_id) + "/live",
        "action_url": page_path(rollout_id),
        "live_seconds": LIVE_SECONDS,
        "alert": alert,
        "console": "rollouts",
        "manage": may_manage(principal),
    }
    return render(
        request, settings, "operations_rollout.html", context, viewer=viewer, form=True, status_code=status_code
    )


@router.get(LIST + "/{rollout_id}")
def rollout_page(
    rollout_id: str, request: Request, session: DbSession, settings: SettingsDep, viewer: Viewer
) -> Response:
    """One rollout's progress wave by wave, refreshed live, with the actions its state allows."""
    principal = reader(request, settings, viewer, request.url.path)
    if isinstance(principal, Response):
        return principal
    assert viewer is not None
    parsed = _rollout_id(rollout_id)
    if parsed is None:
        return not_found(request, settings, viewer)
    return _page(request, session, settings, viewer, principal, parsed)


@router.get(LIST + "/{rollout_id}/live")
def rollout_live(rollout_id: str, session: DbSession, viewer: Viewer) -> Response:
    """The rollout's page content as JSON, for its polling."""
    principal = json_reader(viewer)
    if isinstance(principal, Response):
        return principal
    parsed = _rollout_id(rollout_id)
    rollout = repository.get(session, parsed) if parsed is not None else None
    if rollout is None:
        return live_json({"error": "not found"}, 404)
    return live_json(rollout_view(service.rollout_out(session, rollout), manage=may_manage(principal)))


@router.post(LIST + "/{rollout_id}/{action}")
def rollout_action(
    rollout_id: str,
    action: str,
    request: Request,
    session: DbSession,
    settings: SettingsDep,
    viewer: Viewer,
    csrf_token: FormText = "",
    reason: Annotated[str, Form()] = "",  # too long is the page with its reason
) -> Response:
    """Pause, resume, abort or roll back the rollout, with a reason; back to its page."""
    principal = reader(request, settings, viewer, page_path(rollout_id))
    if isinstance(principal, Response):
        return principal
    assert viewer is not None
    parsed = _rollout_id(rollout_id)
    if parsed is None or action not in Action.__members__:
        return not_found(request, settings, viewer)
    if not form_token_ok(request, settings, csrf_token):
        return _page(request, session, settings, viewer, principal, parsed, alert=FORM_EXPIRED, status_code=403)
    try:
        principal.require(Permission.manage_releases)
        act(session, parsed, Action(action), _reason(reason), principal.actor)
    except Problem as problem:
        session.rollback()
        if isinstance(problem, NotFound):
            return not_found(request, settings, viewer)
        alert = _refusal(problem)
        return _page(request, session, settings, viewer, principal, parsed, alert=alert, status_code=problem.status)
    return redirect(page_path(parsed))


def _reason(text: str) -> str:
    try:
        return RolloutAction(reason=text.strip()).reason
    except ValidationError:
        raise Problem(422, "reason-too-long", "Reason too long", "Say why in at most 500 characters.") from None


def _refusal(problem: Problem) -> str:
    """The problem's detail, with the workspaces a refused rollback names and why."""
    detail = problem.detail or problem.title
    refusals = problem.extra.get("refusals") or []
    named = "; ".join(f"{r['workspace_id']}: {r['reason']}" for r in refusals)
    return f"{detail} ({named})" if named else detail
