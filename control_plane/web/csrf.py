"""CSRF protection of the web forms: signed double-submit tokens.

The browser gets a random *nonce* in a cookie (``canopy_csrf``, HttpOnly, SameSite=Lax; named
``__Host-canopy_csrf`` on https so a workspace subdomain cannot overwrite it). Each form carries
``<issued>.<hmac>`` where ``hmac = HMAC-SHA256(secret_key, "csrf|<nonce>|<issued>")``.
A POST is accepted only when the cookie is present, the form token was signed for that very
cookie and is younger than :data:`MAX_AGE_SECONDS`. A cross-site page can neither read the cookie
nor forge a signature for it; a tossed cookie without its signature is useless too.

Nothing is stored on the server, and neither value is ever logged.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from control_plane.core.settings import Settings

MAX_AGE_SECONDS = 12 * 3600
FIELD = "csrf_token"


def cookie_name(settings: Settings) -> str:
    """The nonce cookie; ``__Host-`` prefixed (browser-enforced host-only) when served over https."""
    return "__Host-canopy_csrf" if is_https(settings) else "canopy_csrf"


def is_https(settings: Settings) -> bool:
    """Whether the control plane is published over https (cookies are then Secure)."""
    return settings.public_url.lower().startswith("https://")


def new_nonce() -> str:
    """A fresh random cookie value."""
    return secrets.token_urlsafe(32)


def _signature(settings: Settings, nonce: str, issued: int) -> str:
    key = settings.secret_key.get_secret_value().encode()
    return hmac.new(key, f"csrf|{nonce}|{issued}".encode(), hashlib.sha256).hexdigest()


def token_for(settings: Settings, nonce: str, now: float | None = None) -> str:
    """The form token bound to ``nonce``."""
    issued = int(time.time() if now is None else now)
    return f"{issued}.{_signature(settings, nonce, issued)}"


def valid(settings: Settings, nonce: str | None, token: str | None, now: float | None = None) -> bool:
    """Whether ``token`` was signed for ``nonce`` and has not expired."""
    if not nonce or not token:
        return False
    issued_text, _, signature = token.partition(".")
    if not issued_text.isdigit() or not signature:
        return False
    issued = int(issued_text)
    age = (time.time() if now is None else now) - issued
    if age < -60 or age > MAX_AGE_SECONDS:
        return False
    return hmac.compare_digest(signature, _signature(settings, nonce, issued))
