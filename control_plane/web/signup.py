"""The signup form and where its verification link went."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from control_plane.accounts import service as accounts
from control_plane.accounts.api import limit_signups
from control_plane.accounts.models import Account
from control_plane.accounts.schemas import MIN_PASSWORD, SignupRequest
from control_plane.core.deps import DbSession
from control_plane.core.problems import Problem
from control_plane.core.ratelimit import RateLimited
from control_plane.core.settings import Settings
from control_plane.web.sessions import Viewer
from control_plane.web.views import (
    FORM_EXPIRED,
    SettingsDep,
    form_token_ok,
    redirect,
    render,
    retry_after,
)
from control_plane.workspaces import service as workspaces

router = APIRouter(include_in_schema=False)

FIELDS = ("email", "workspace", "password")


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
    """Validate, rate-limit and record a signup; the service mails the verification link.

    An email that already has an account gets the same "check your email" answer (its holder is mailed
    a sign-in link instead), so the form does not tell which emails are registered.
    """
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
    return redirect(f"/signup/check-email?email={quote(result.email)}")


@router.get("/signup/check-email")
def check_email(request: Request, settings: SettingsDep, viewer: Viewer, email: str = "") -> Response:
    """Tells where the verification link went."""
    return render(request, settings, "check_email.html", {"email": email[:320]}, viewer=viewer)
