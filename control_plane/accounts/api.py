"""Signup, verification and password-token routes under /api/v1."""

from __future__ import annotations

import hashlib

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from control_plane.accounts import repository, service
from control_plane.accounts.schemas import SignupAccepted, SignupRequest, Verified, VerifyRequest
from control_plane.core.deps import DbSession, IdempotencyKey
from control_plane.core.idempotency import run_once
from control_plane.core.problems import problem_responses
from control_plane.core.ratelimit import client_address, hit
from control_plane.core.settings import get_settings
from control_plane.reconciler.queue import Cause, defer_reconcile
from control_plane.workspaces.schemas import workspace_out

router = APIRouter(prefix="/api/v1", tags=["signup"])


def limit_signups(session: DbSession, request: Request) -> None:
    """Apply the per-address signup rate limit."""
    settings = get_settings()
    hit(session, f"signup:{client_address(request)}", settings.signup_rate_limit, settings.signup_rate_window_seconds)


@router.post("/signup", status_code=202, response_model=SignupAccepted, responses=problem_responses(409, 429, 503))
def signup(body: SignupRequest, request: Request, session: DbSession, key: IdempotencyKey) -> JSONResponse:
    """Self-serve signup; the workspace is created once the email is confirmed."""
    limit_signups(session, request)
    payload = body.model_dump(mode="json", exclude={"password"})  # never digest a password

    def create() -> tuple[int, object]:
        result = service.signup(
            session,
            email=body.email,
            password=body.password,
            slug=body.workspace,
            display_name=body.display_name,
        )
        accepted = SignupAccepted(email=result.email, workspace=result.slug)
        return 202, accepted.model_dump(mode="json")

    # Keys are scoped per email (one client's key cannot block another's); the email is digested only
    # because it may be longer than the scope column. A replay needs the same password (argon2-checked).
    scope = "signup:" + hashlib.sha256(repository.normalize_email(body.email).encode()).hexdigest()
    outcome = run_once(session, scope, key, payload, create, secret=body.password)
    return JSONResponse(outcome.body, status_code=outcome.status_code)


@router.post("/signup/verify", response_model=Verified, responses=problem_responses(400))
def verify(body: VerifyRequest, session: DbSession) -> Verified:
    """Confirm an email; its workspaces start provisioning."""
    verified = service.verify_email(session, body.token)
    for ws in verified.started:
        defer_reconcile(ws.id, Cause.signup)
    return Verified(account_id=verified.account.id, workspaces=[workspace_out(ws) for ws in verified.started])
