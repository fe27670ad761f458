"""The route workspace servers send their health reports to (authenticated by the workspace's control token)."""

from __future__ import annotations

import hmac
import uuid

import redis
from fastapi import APIRouter, Request, Response

from control_plane.core.deps import DbSession
from control_plane.core.problems import Problem, Unauthorized, problem_responses
from control_plane.core.ratelimit import client_address, hit
from control_plane.core.settings import get_settings
from control_plane.credentials.models import Purpose
from control_plane.credentials.service import reveal
from control_plane.drift import health
from control_plane.drift.schemas import HealthReport

router = APIRouter(prefix="/api/v1/workspaces", tags=["workspace health"])
FAILED_CHECKS_PER_WINDOW = 20
WINDOW_SECONDS = 600


@router.post("/{workspace_id}/health", status_code=204, responses=problem_responses(401, 429, 503))
def report_health(workspace_id: uuid.UUID, body: HealthReport, request: Request, session: DbSession) -> Response:
    """A workspace server's health report (``Authorization: Bearer <its control token>``); 401 for any other
    caller, the same whether or not the workspace exists. Failed checks are rate limited per address."""
    given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    token = reveal(session, workspace_id, Purpose.control)
    if token is None or not hmac.compare_digest(given.encode(), token.encode()):
        hit(session, f"health-token:{client_address(request)}", FAILED_CHECKS_PER_WINDOW, WINDOW_SECONDS)
        raise Unauthorized("A workspace's control token is required")
    try:
        health.record(get_settings(), workspace_id, body.problems)
    except redis.RedisError:
        raise Problem(503, "health-reports-unavailable", "Health reports cannot be kept now") from None
    return Response(status_code=204)
