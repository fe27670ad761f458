"""Server-rendered signup pages: signup form, email verification, provisioning progress, dev mailbox.

Pages authenticate with the ``canopy_session`` cookie (opened by the verification link or by
signing in). Without a session the workspace pages send the browser to sign in; another
organization's workspace (or one that does not exist) is a 404, so nothing leaks.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from control_plane.accounts import service as accounts
from control_plane.accounts.api import limit_signups
from control_plane.accounts.models import Account, EmailVerification
from control_plane.accounts.schemas import MIN_PASSWORD, SignupRequest
from control_plane.core.clock import utcnow
from control_plane.core.db import new_session
from control_plane.core.deps import DbSession
from control_plane.core.problems import Problem
from control_plane.core.ratelimit import RateLimited
from control_plane.core.security import token_digest
from control_plane.core.settings import Settings
from control_plane.mail import service as mail
from control_plane.mail.models import OutboxMail
from control_plane.reconciler.queue import defer_reconcile
from control_plane.web.access import own_workspace, progress_path, ready_path, status_path, workspaces_of
from control_plane.web.progress import is_ready, progress_of
from control_plane.web.rendering import STATIC_DIR
from control_plane.web.sessions import Viewer, current_viewer, login_redirect, start_session
from control_plane.web.signin import router as signin_router
from control_plane.web.views import (
    FORM_EXPIRED,
    SettingsDep,
    form_token_ok,
    message,
    not_found,
    redirect,
    render,
    retry_after,
)
from control_plane.workspaces import service as workspaces
from control_plane.workspaces.models import Workspace

router = APIRouter(include_in_schema=False)

router.include_router(signin_router)

FIELDS = ("email", "workspace", "password")
STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}


# --- signup ---------------------------------------------------------------------------------


def _signup_form(
    request: Request,
    settings: Settings,
    viewer: Account | None,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    alert: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """The form, with the input kept except the password."""
    kept = {k: v for k, v in (values or {}).items() if k != "password"}
    context = {"values": kept, "errors": errors or {}, "alert": alert, "min_password": MIN_PASSWORD}
    return render(
        request, settings, "signup.html", context, viewer=viewer, form=True, status_code=status_code, headers=headers
    )


@router.get("/")
def home() -> Response:
    """The web entry point is the signup form."""
    return redirect("/signup")


@router.get("/signup")
def signup_page(request: Request, settings: SettingsDep, viewer: Viewer) -> Response:
    """The signup form."""
    return _signup_form(request, settings, viewer)


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
    viewer: Viewer,
    email: Annotated[str, Form(max_length=400)] = "",
    workspace: Annotated[str, Form(max_length=400)] = "",
    password: Annotated[str, Form(max_length=400)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Validate, rate-limit and record a signup; the service mails the verification link."""
    values = {"email": email, "workspace": workspace, "password": password}
    if not form_token_ok(request, settings, csrf_token):
        return _signup_form(request, settings, viewer, values=values, alert=FORM_EXPIRED, status_code=403)
    try:
        limit_signups(session, request)
    except RateLimited as exc:
        seconds, minutes = retry_after(exc)
        return _signup_form(
            request,
            settings,
            viewer,
            values=values,
            alert=f"Too many signups from your network. Please try again in {minutes} minutes.",
            status_code=429,
            headers={"Retry-After": str(seconds)},
        )

    errors = _format_errors(values)
    status_code = 422
    if "workspace" not in errors:
        address = _address_error(session, settings, workspace)
        if address is not None:
            errors["workspace"], address_status = address
            status_code = 422 if len(errors) > 1 or address_status == 422 else 409
    if errors:
        return _signup_form(request, settings, viewer, values=values, errors=errors, status_code=status_code)

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
            viewer,
            values=values,
            errors={field: detail} if field else None,
            alert=None if field else detail,
            status_code=problem.status,
        )
    except IntegrityError as exc:  # a concurrent signup took the address or the email first
        session.rollback()
        taken = "workspace" if "workspaces" in str(exc.orig) else "email"
        text = "This address was just taken." if taken == "workspace" else "An account with this email exists."
        return _signup_form(request, settings, viewer, values=values, errors={taken: text}, status_code=409)
    return redirect(f"/signup/check-email?email={quote(result.account.email)}")


@router.get("/signup/check-email")
def check_email(request: Request, settings: SettingsDep, viewer: Viewer, email: str = "") -> Response:
    """Tells where the verification link went."""
    return render(request, settings, "check_email.html", {"email": email[:320]}, viewer=viewer)


# --- verification and session ---------------------------------------------------------------


def _verify_failed(request: Request, settings: Settings, viewer: Account | None, text: str) -> Response:
    return message(request, settings, "This link does not work", text, viewer=viewer, status_code=400, signup_link=True)


@router.get("/signup/verify")
def verify(request: Request, session: DbSession, settings: SettingsDep, viewer: Viewer, token: str = "") -> Response:
    """Confirm the email, open a browser session and show the workspace being provisioned."""
    if not token or len(token) > 200:
        return _verify_failed(request, settings, viewer, "The link is incomplete. Copy the whole link from the mail.")
    try:
        account, started = accounts.verify_email(session, token)
    except accounts.VerificationInvalid:
        return _verify_failed(
            request, settings, viewer, "This link is unknown or has expired. Sign up again to get a new one."
        )
    for ws in started:
        defer_reconcile(ws.id)
    # A link keeps confirming the email forever, but it signs the browser in only while valid.
    record = session.scalars(
        select(EmailVerification).where(EmailVerification.token_digest == token_digest(token))
    ).one()
    if record.expires_at is not None and record.expires_at < utcnow():
        return _verify_failed(
            request, settings, viewer, "Your email is confirmed, but this link has expired and cannot sign you in."
        )
    # A link used before started nothing: show the account's newest workspace.
    target: Workspace | None = started[0] if started else next(iter(workspaces_of(session, account)), None)
    response: Response
    if target is None:
        response = message(request, settings, "Email confirmed", "Your email is confirmed.", viewer=account)
    else:
        response = redirect(progress_path(target))
    start_session(session, request, response, account, settings)
    return response


def _workspace_or_refusal(
    request: Request, session: Session, settings: Settings, viewer: Account | None, workspace_id: str
) -> Workspace | Response:
    """The viewer's workspace; else sign in first (no session) or 404 (not the viewer's, or unknown)."""
    if viewer is None:
        return login_redirect(request.url.path)
    ws = own_workspace(session, viewer, workspace_id)
    return not_found(request, settings, viewer) if ws is None else ws


# --- provisioning progress and result -------------------------------------------------------


@router.get("/signup/workspaces/{workspace_id}/progress")
def progress_page(
    workspace_id: str, request: Request, session: DbSession, settings: SettingsDep, viewer: Viewer
) -> Response:
    """Provisioning steps as they complete (polls the status endpoint; meta refresh without JS)."""
    ws = _workspace_or_refusal(request, session, settings, viewer, workspace_id)
    if isinstance(ws, Response):
        return ws
    progress = progress_of(ws, settings.base_domain)
    if progress.ready:
        return redirect(ready_path(ws))
    context = {"workspace": ws, "progress": progress, "status_url": status_path(ws), "ready_url": ready_path(ws)}
    return render(request, settings, "progress.html", context, viewer=viewer)


@router.get("/signup/workspaces/{workspace_id}/status")
def progress_status(workspace_id: str, session: DbSession, settings: SettingsDep, viewer: Viewer) -> Response:
    """The progress as JSON for the page's polling.

    Without a session it sends the browser to sign in and come back to the progress page; a
    workspace that is not the viewer's is a 404.
    """
    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    if viewer is None:
        return login_redirect(f"/signup/workspaces/{quote(workspace_id, safe='')}/progress")
    ws = own_workspace(session, viewer, workspace_id)
    if ws is None:
        return JSONResponse({"error": "not found"}, status_code=404, headers=headers)
    body = progress_of(ws, settings.base_domain).as_json()
    body["ready_url"] = ready_path(ws) if body["ready"] else None
    return JSONResponse(body, headers=headers)


@router.get("/signup/workspaces/{workspace_id}/ready")
def ready_page(
    workspace_id: str, request: Request, session: DbSession, settings: SettingsDep, viewer: Viewer
) -> Response:
    """Where the workspace is and how to sign in to it."""
    ws = _workspace_or_refusal(request, session, settings, viewer, workspace_id)
    if isinstance(ws, Response):
        return ws
    if not is_ready(ws):
        return redirect(progress_path(ws))
    assert viewer is not None
    context = {"workspace": ws, "url": ws.endpoint_url, "login": ws.initial_admin_email or viewer.email}
    return render(request, settings, "ready.html", context, viewer=viewer)


# --- dev mailbox ----------------------------------------------------------------------------


@router.get("/dev/mail")
def dev_mailbox(request: Request, settings: SettingsDep, to: str | None = None) -> Response:
    """The newest outbox messages (dev mode only; outside it no database is touched)."""
    if not settings.dev_mode:
        return not_found(request, settings, None)
    with new_session() as session:
        viewer = current_viewer(request, session)
        messages = mail.recent(session, limit=50, to=to.strip().lower() if to else None)
    return render(request, settings, "dev_mail.html", {"messages": messages, "to": to}, viewer=viewer)


@router.get("/dev/mail/{mail_id}")
def dev_mail_message(mail_id: str, request: Request, settings: SettingsDep) -> Response:
    """One outbox message (dev mode only)."""
    if not settings.dev_mode or not mail_id.isdigit() or len(mail_id) > 18:
        return not_found(request, settings, None)
    with new_session() as session:
        viewer = current_viewer(request, session)
        outbox_mail = session.get(OutboxMail, int(mail_id))
    if outbox_mail is None:
        return not_found(request, settings, viewer)
    return render(request, settings, "dev_mail_message.html", {"message": outbox_mail}, viewer=viewer)


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
