"""Server-rendered signup pages: signup form, email verification, provisioning progress, dev mailbox.

Pages authenticate with the ``canopy_session`` cookie (opened by the verification link); another
organization's workspace, or no session at all, is a 404 so nothing leaks.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from control_plane.accounts import service as accounts
from control_plane.accounts.api import limit_signups
from control_plane.accounts.models import Account, EmailVerification, Membership
from control_plane.accounts.schemas import MIN_PASSWORD, SignupRequest
from control_plane.core.clock import utcnow
from control_plane.core.db import new_session
from control_plane.core.deps import DbSession
from control_plane.core.problems import Problem
from control_plane.core.ratelimit import RateLimited
from control_plane.core.security import token_digest
from control_plane.core.settings import Settings, get_settings
from control_plane.mail import service as mail
from control_plane.mail.models import OutboxMail
from control_plane.reconciler.queue import defer_reconcile
from control_plane.web import csrf
from control_plane.web.progress import is_ready, progress_of
from control_plane.web.rendering import STATIC_DIR, page
from control_plane.workspaces import repository as workspaces_repo
from control_plane.workspaces import service as workspaces
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Workspace

router = APIRouter(include_in_schema=False)

SettingsDep = Annotated[Settings, Depends(get_settings)]
SESSION_COOKIE = "canopy_session"
FIELDS = ("email", "workspace", "password")
_NONCE = re.compile(r"[A-Za-z0-9_-]{43}")
STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}


def _common(settings: Settings) -> dict[str, Any]:
    return {"base_domain": settings.base_domain, "dev_mode": settings.dev_mode, "trial_days": settings.trial_days}


def _not_found(request: Request, settings: Settings) -> Response:
    return page(
        request,
        "message.html",
        {
            **_common(settings),
            "title": "Page not found",
            "message": "There is nothing here, or you are not signed in to see it.",
        },
        status_code=404,
    )


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers={"Referrer-Policy": "no-referrer"})


# --- signup ---------------------------------------------------------------------------------


def _signup_form(
    request: Request,
    settings: Settings,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    alert: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """The form, with a CSRF token bound to the browser's nonce cookie (set when missing)."""
    nonce = request.cookies.get(csrf.cookie_name(settings))
    fresh = nonce is None or not _NONCE.fullmatch(nonce)
    if fresh:
        nonce = csrf.new_nonce()
    assert nonce is not None
    kept = {k: v for k, v in (values or {}).items() if k != "password"}
    response = page(
        request,
        "signup.html",
        {
            **_common(settings),
            "values": kept,
            "errors": errors or {},
            "alert": alert,
            "csrf_field": csrf.FIELD,
            "csrf_token": csrf.token_for(settings, nonce),
            "min_password": MIN_PASSWORD,
        },
        status_code=status_code,
        headers=headers,
    )
    if fresh:
        response.set_cookie(
            csrf.cookie_name(settings),
            nonce,
            httponly=True,
            samesite="lax",
            secure=csrf.is_https(settings),
            path="/",
        )
    return response


@router.get("/")
def home() -> RedirectResponse:
    """The web entry point is the signup form."""
    return _redirect("/signup")


@router.get("/signup")
def signup_page(request: Request, settings: SettingsDep) -> Response:
    """The signup form."""
    return _signup_form(request, settings)


def _format_errors(values: dict[str, str]) -> dict[str, str]:
    """Field errors of the request schema, worded for people."""
    try:
        SignupRequest(email=values["email"], workspace=values["workspace"], password=values["password"])
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            if field == "email":
                errors["email"] = "Enter an email address like name@example.com."
            elif field == "password":
                errors["password"] = f"Use a password of at least {MIN_PASSWORD} characters."
            elif field == "workspace" and not values["workspace"].strip():
                errors["workspace"] = "Choose an address for your workspace."
        return errors
    return {}


def _address_error(session: Session, settings: Settings, raw: str) -> tuple[str, int] | None:
    """Why the address cannot be used (message, status), per the availability service."""
    verdict = workspaces.availability(session, raw)
    if verdict.available:
        return None
    if verdict.reason == "is already taken":
        return f"{verdict.slug}.{settings.base_domain} is already taken.", 409
    return f"The address {verdict.reason}.", 422


def _problem_field(problem: Problem) -> str | None:
    field = problem.extra.get("field")
    if field is None and problem.extra.get("errors"):
        field = problem.extra["errors"][0].get("field")
    return str(field) if field in FIELDS else None


@router.post("/signup")
def signup_submit(
    request: Request,
    session: DbSession,
    settings: SettingsDep,
    email: Annotated[str, Form(max_length=400)] = "",
    workspace: Annotated[str, Form(max_length=400)] = "",
    password: Annotated[str, Form(max_length=400)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Validate, rate-limit and record a signup; the service mails the verification link."""
    values = {"email": email, "workspace": workspace, "password": password}
    if not csrf.valid(settings, request.cookies.get(csrf.cookie_name(settings)), csrf_token):
        return _signup_form(
            request,
            settings,
            values=values,
            alert="This form expired or did not come from this page. Please check it and send it again.",
            status_code=403,
        )
    try:
        limit_signups(session, request)
    except RateLimited as exc:
        retry_after = int(exc.extra.get("retry_after", 60))
        minutes = max(1, -(-retry_after // 60))
        return _signup_form(
            request,
            settings,
            values=values,
            alert=f"Too many signups from your network. Please try again in {minutes} minutes.",
            status_code=429,
            headers={"Retry-After": str(retry_after)},
        )

    errors = _format_errors(values)
    status_code = 422
    if "workspace" not in errors:
        address = _address_error(session, settings, workspace)
        if address is not None:
            errors["workspace"], address_status = address
            status_code = 422 if len(errors) > 1 or address_status == 422 else 409
    if errors:
        return _signup_form(request, settings, values=values, errors=errors, status_code=status_code)

    try:
        result = accounts.signup(session, email=email, password=password, slug=workspace, display_name=None)
        session.commit()
    except Problem as problem:
        session.rollback()
        field = _problem_field(problem)
        detail = problem.detail or problem.title
        return _signup_form(
            request,
            settings,
            values=values,
            errors={field: detail} if field else None,
            alert=None if field else detail,
            status_code=problem.status,
        )
    except IntegrityError as exc:  # a concurrent signup took the address or the email first
        session.rollback()
        taken = "workspace" if "workspaces" in str(exc.orig) else "email"
        message = "This address was just taken." if taken == "workspace" else "An account with this email exists."
        return _signup_form(request, settings, values=values, errors={taken: message}, status_code=409)
    return _redirect(f"/signup/check-email?email={quote(result.account.email)}")


@router.get("/signup/check-email")
def check_email(request: Request, settings: SettingsDep, email: str = "") -> Response:
    """Tells where the verification link went."""
    return page(request, "check_email.html", {**_common(settings), "email": email[:320]})


# --- verification and session ---------------------------------------------------------------


def _verify_failed(request: Request, settings: Settings, message: str) -> Response:
    return page(
        request,
        "message.html",
        {**_common(settings), "title": "This link does not work", "message": message, "signup_link": True},
        status_code=400,
    )


def _member_organizations(session: Session, account: Account) -> list[uuid.UUID]:
    return list(session.scalars(select(Membership.organization_id).where(Membership.account_id == account.id)))


@router.get("/signup/verify")
def verify(request: Request, session: DbSession, settings: SettingsDep, token: str = "") -> Response:
    """Confirm the email, open a browser session and show the workspace being provisioned."""
    if not token or len(token) > 200:
        return _verify_failed(request, settings, "The link is incomplete. Copy the whole link from the mail.")
    try:
        account, started = accounts.verify_email(session, token)
    except accounts.VerificationInvalid:
        return _verify_failed(request, settings, "This link is unknown or has expired. Sign up again to get a new one.")
    for ws in started:
        defer_reconcile(ws.id)
    # A link keeps confirming the email forever, but it signs the browser in only while valid.
    record = session.scalars(
        select(EmailVerification).where(EmailVerification.token_digest == token_digest(token))
    ).one()
    if record.expires_at is not None and record.expires_at < utcnow():
        return _verify_failed(
            request, settings, "Your email is confirmed, but this link has expired and cannot sign you in."
        )
    secret = accounts.open_web_session(session, account)
    session.commit()
    target: Workspace | None = started[0] if started else None
    if target is None:  # the link was used before: show the newest workspace of the account
        orgs = _member_organizations(session, account)
        target = session.scalars(
            select(Workspace)
            .where(Workspace.organization_id.in_(orgs), Workspace.lifecycle_state != Lifecycle.deleted)
            .order_by(Workspace.created_at.desc())
            .limit(1)
        ).one_or_none()
    response: Response
    if target is None:
        response = page(
            request,
            "message.html",
            {**_common(settings), "title": "Email confirmed", "message": "Your email is confirmed."},
        )
    else:
        response = _redirect(f"/signup/workspaces/{target.id}/progress")
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(accounts.WEB_SESSION_TTL.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=csrf.is_https(settings),
        path="/",
    )
    return response


def _own_workspace(request: Request, session: Session, raw_id: str) -> tuple[Account, Workspace] | None:
    """The session's account and the workspace, if it belongs to one of the account's organizations."""
    account = accounts.account_for_web_session(session, request.cookies.get(SESSION_COOKIE))
    if account is None:
        return None
    try:
        workspace_id = uuid.UUID(raw_id)
    except ValueError:
        return None
    ws = workspaces_repo.get(session, workspace_id)
    if ws is None or ws.organization_id not in _member_organizations(session, account):
        return None
    return account, ws


# --- provisioning progress and result -------------------------------------------------------


@router.get("/signup/workspaces/{workspace_id}/progress")
def progress_page(workspace_id: str, request: Request, session: DbSession, settings: SettingsDep) -> Response:
    """Provisioning steps as they complete (polls the status endpoint; meta refresh without JS)."""
    owned = _own_workspace(request, session, workspace_id)
    if owned is None:
        return _not_found(request, settings)
    _, ws = owned
    progress = progress_of(ws, settings.base_domain)
    if progress.ready:
        return _redirect(f"/signup/workspaces/{ws.id}/ready")
    return page(
        request,
        "progress.html",
        {
            **_common(settings),
            "workspace": ws,
            "progress": progress,
            "status_url": f"/signup/workspaces/{ws.id}/status",
            "ready_url": f"/signup/workspaces/{ws.id}/ready",
        },
    )


@router.get("/signup/workspaces/{workspace_id}/status")
def progress_status(workspace_id: str, request: Request, session: DbSession, settings: SettingsDep) -> Response:
    """The progress as JSON for the page's polling (session-authenticated; 404 otherwise)."""
    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    owned = _own_workspace(request, session, workspace_id)
    if owned is None:
        return JSONResponse({"error": "not found"}, status_code=404, headers=headers)
    _, ws = owned
    body = progress_of(ws, settings.base_domain).as_json()
    body["ready_url"] = f"/signup/workspaces/{ws.id}/ready" if body["ready"] else None
    return JSONResponse(body, headers=headers)


@router.get("/signup/workspaces/{workspace_id}/ready")
def ready_page(workspace_id: str, request: Request, session: DbSession, settings: SettingsDep) -> Response:
    """Where the workspace is and how to sign in to it."""
    owned = _own_workspace(request, session, workspace_id)
    if owned is None:
        return _not_found(request, settings)
    account, ws = owned
    if not is_ready(ws):
        return _redirect(f"/signup/workspaces/{ws.id}/progress")
    return page(
        request,
        "ready.html",
        {
            **_common(settings),
            "workspace": ws,
            "url": ws.endpoint_url,
            "login": ws.initial_admin_email or account.email,
        },
    )


# --- dev mailbox ----------------------------------------------------------------------------


@router.get("/dev/mail")
def dev_mailbox(request: Request, settings: SettingsDep, to: str | None = None) -> Response:
    """The newest outbox messages (dev mode only)."""
    if not settings.dev_mode:
        return _not_found(request, settings)
    with new_session() as session:
        messages = mail.recent(session, limit=50, to=to.strip().lower() if to else None)
    return page(request, "dev_mail.html", {**_common(settings), "messages": messages, "to": to})


@router.get("/dev/mail/{mail_id}")
def dev_mail_message(mail_id: str, request: Request, settings: SettingsDep) -> Response:
    """One outbox message (dev mode only)."""
    if not settings.dev_mode or not mail_id.isdigit() or len(mail_id) > 18:
        return _not_found(request, settings)
    with new_session() as session:
        message = session.get(OutboxMail, int(mail_id))
    if message is None:
        return _not_found(request, settings)
    return page(request, "dev_mail_message.html", {**_common(settings), "message": message})


# --- static files ---------------------------------------------------------------------------

STATIC_FILES = {p.name: p for p in STATIC_DIR.iterdir() if p.suffix in STATIC_TYPES} if STATIC_DIR.is_dir() else {}


@router.get("/static/{name}")
def static_file(name: str) -> Response:
    """The stylesheet and scripts of the pages."""
    path = STATIC_FILES.get(name)
    if path is None:
        return Response("Not found", status_code=404, media_type="text/plain")
    return FileResponse(
        path,
        media_type=STATIC_TYPES[path.suffix],
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )
