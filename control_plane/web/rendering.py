"""Jinja2 templates, security headers and small view helpers of the web pages."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

PACKAGE_DIR = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = PACKAGE_DIR / "templates"
STATIC_DIR = PACKAGE_DIR / "static"

# Pages load nothing but their own stylesheet and scripts (no inline script, no third parties); a page that needs
# another origin (the billing page's Stripe.js) allows it on that page only (:func:`content_security_policy`).
CSP_DIRECTIVES: dict[str, tuple[str, ...]] = {
    "default-src": ("'none'",),
    "script-src": ("'self'",),
    "style-src": ("'self'",),
    "img-src": ("'self'",),
    "connect-src": ("'self'",),
    "form-action": ("'self'",),
    "base-uri": ("'none'",),
    "frame-ancestors": ("'none'",),
}


def content_security_policy(allow: Mapping[str, Sequence[str]] | None = None) -> str:
    """The pages' policy, with the sources of ``allow`` added to its directives (``{"frame-src": [...]}``)."""
    directives = {name: list(sources) for name, sources in CSP_DIRECTIVES.items()}
    for name, sources in (allow or {}).items():
        directives.setdefault(name, []).extend(s for s in sources if s not in directives[name])
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


CONTENT_SECURITY_POLICY = content_security_policy()
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_URL = re.compile(r"https?://[^\s<>\"']+")
_TRAILING = ".,;:!?)]"


def linkify(text: str) -> Markup:
    """Escape ``text`` and turn its http(s) URLs into links."""
    escaped = str(escape(text))

    def link(match: re.Match[str]) -> str:
        url = match.group(0)
        tail = ""
        while url and url[-1] in _TRAILING:
            url, tail = url[:-1], url[-1] + tail
        return f'<a href="{url}">{url}</a>{tail}'

    return Markup(_URL.sub(link, escaped))


def long_date(value: datetime | None) -> str:
    """``7 December 2025`` (UTC), or an empty string."""
    if value is None:
        return ""
    return f"{value.day} {value.strftime('%B %Y')}"


templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
templates.env.filters["linkify"] = linkify
templates.env.filters["long_date"] = long_date


def page(
    request: Request,
    template: str,
    context: dict[str, Any],
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """Render ``template`` with the security headers every page carries."""
    response = templates.TemplateResponse(request, template, context, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    if headers:
        response.headers.update(headers)
    return response
