"""What every web page shares: settings, the CSRF-bound form token, header navigation, redirects."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response

from control_plane.accounts.models import Account
from control_plane.core.ratelimit import RateLimited
from control_plane.core.settings import Settings, get_settings
from control_plane.sales.auth import console_principal
from control_plane.web import csrf
from control_plane.web.access import operator
from control_plane.web.rendering import page

SettingsDep = Annotated[Settings, Depends(get_settings)]
_NONCE = re.compile(r"[A-Za-z0-9_-]{43}")
FORM_EXPIRED = "This form expired or did not come from this page. Please check it and send it again."


def common(settings: Settings) -> dict[str, Any]:
    """Context every template uses."""
    return {"base_domain": settings.base_domain, "dev_mode": settings.dev_mode, "trial_days": settings.trial_days}


def form_token_ok(request: Request, settings: Settings, token: str) -> bool:
    """Whether a submitted form token was signed for this browser's CSRF cookie."""
    return csrf.valid(settings, request.cookies.get(csrf.cookie_name(settings)), token)


def render(
    request: Request,
    settings: Settings,
    template: str,
    context: dict[str, Any],
    *,
    viewer: Account | None,
    form: bool = False,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """A page with the header navigation of ``viewer``.

    A page with a ``form``, or with the header's sign-out form (any page a signed-in viewer
    sees), gets a CSRF token bound to the browser's nonce cookie; the cookie is set when missing
    (or malformed). Other pages set no cookie.
    """
    values = {
        **common(settings),
        "viewer": viewer,
        "operations_nav": operator(viewer) is not None,
        "sales_nav": viewer is not None and console_principal(viewer.staff_role, viewer.id) is not None,
        **context,
    }
    nonce: str | None = None
    fresh = False
    if form or viewer is not None:
        nonce = request.cookies.get(csrf.cookie_name(settings))
        fresh = nonce is None or not _NONCE.fullmatch(nonce)
        if fresh:
            nonce = csrf.new_nonce()
        assert nonce is not None
        values.update(csrf_field=csrf.FIELD, csrf_token=csrf.token_for(settings, nonce))
    response = page(request, template, values, status_code=status_code, headers=headers)
    if fresh and nonce is not None:
        response.set_cookie(
            csrf.cookie_name(settings),
            nonce,
            httponly=True,
            samesite="lax",
            secure=csrf.is_https(settings),
            path="/",
        )
    return response


def message(
    request: Request,
    settings: Settings,
    title: str,
    text: str,
    *,
    viewer: Account | None,
    status_code: int = 200,
    signup_link: bool = False,
    login_link: bool = False,
) -> Response:
    """A page saying one thing (with a link to the signup or sign-in page)."""
    context = {"title": title, "message": text, "signup_link": signup_link, "login_link": login_link}
    return render(request, settings, "message.html", context, viewer=viewer, status_code=status_code)


def not_found(request: Request, settings: Settings, viewer: Account | None) -> Response:
    """The 404 page (also for what exists but is not the viewer's: nothing leaks)."""
    return message(
        request,
        settings,
        "Page not found",
        "There is nothing here, or you are not signed in to see it.",
        viewer=viewer,
        status_code=404,
    )


def redirect(url: str) -> RedirectResponse:
    """A 303 "see other" that sends no referrer along."""
    return RedirectResponse(url, status_code=303, headers={"Referrer-Policy": "no-referrer"})


def retry_after(exc: RateLimited) -> tuple[int, int]:
    """Seconds (for the Retry-After header) and whole minutes (for people) until the limit resets."""
    seconds = int(exc.extra.get("retry_after", 60))
    return seconds, max(1, -(-seconds // 60))
