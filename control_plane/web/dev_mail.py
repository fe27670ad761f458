"""The dev mailbox: the outbox as pages (dev mode only)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from control_plane.core.db import new_session
from control_plane.mail import service as mail
from control_plane.mail.models import OutboxMail
from control_plane.web.sessions import current_viewer
from control_plane.web.views import (
    SettingsDep,
    not_found,
    render,
)

router = APIRouter(include_in_schema=False)


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
