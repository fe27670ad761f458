"""Browser sessions of the web pages: the ``canopy_session`` cookie, who is signed in, where to go next.

The cookie holds a random secret; the ``web_sessions`` table keeps only its digest. Signing in
(by password or by a verification link) always opens a *new* session and deletes the one the
browser brought along, so a session value planted before sign-in is never promoted to a signed-in
one. Signing out deletes the row, so a copied cookie stops working at once.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from fastapi.responses import Response
from sqlalchemy import delete
from sqlalchemy.orm import Session

from control_plane.accounts import service as accounts
from control_plane.accounts.models import Account, WebSession
from control_plane.core.deps import DbSession
from control_plane.core.security import token_digest
from control_plane.core.settings import Settings
from control_plane.web import csrf
from control_plane.web.views import redirect

SESSION_COOKIE = "canopy_session"
DEFAULT_NEXT = "/workspaces"
MAX_NEXT = 2000


def current_viewer(request: Request, session: DbSession) -> Account | None:
    """The account signed in with this browser, if any (a missing, unknown or expired cookie is none)."""
    return accounts.account_for_web_session(session, request.cookies.get(SESSION_COOKIE))


Viewer = Annotated[Account | None, Depends(current_viewer)]


def end_session(session: Session, request: Request) -> None:
    """Delete the session row the browser's cookie names, if any (not committed)."""
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        session.execute(delete(WebSession).where(WebSession.token_digest == token_digest(secret)))


def start_session(session: Session, request: Request, response: Response, account: Account, settings: Settings) -> None:
    """Rotate: end the browser's previous session, open a new one for ``account``, set its cookie (commits)."""
    end_session(session, request)
    secret = accounts.open_web_session(session, account)
    session.commit()
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(accounts.WEB_SESSION_TTL.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=csrf.is_https(settings),
        path="/",
    )


def forget_session_cookie(response: Response, settings: Settings) -> None:
    """Tell the browser to drop the session cookie."""
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=csrf.is_https(settings))


def safe_next(raw: str | None) -> str | None:
    """``raw`` if it is a path on this site (``/...``), else None.

    Refused: ``//host`` and ``/\\host`` (browsers read both as another host), anything with a
    scheme or host, backslashes, and control or space characters (browsers drop tabs and newlines,
    which could turn ``/<tab>/host`` into ``//host``).
    """
    if not raw or len(raw) > MAX_NEXT or not raw.startswith("/") or raw[1:2] in ("/", "\\"):
        return None
    if "\\" in raw or any(ch <= " " or ch == "\x7f" for ch in raw):
        return None
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc:
        return None
    return raw


def login_redirect(next_path: str) -> Response:
    """303 to the sign-in page, coming back to ``next_path`` afterwards."""
    return redirect(f"/login?next={quote(next_path, safe='/')}")
