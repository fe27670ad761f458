"""One mail interface: every message is recorded in the outbox; SMTP delivers it when configured."""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage

from sqlalchemy import select
from sqlalchemy.orm import Session

from control_plane.core.clock import utcnow
from control_plane.core.settings import get_settings
from control_plane.mail.models import OutboxMail

log = logging.getLogger(__name__)


def queue(session: Session, to: str, subject: str, body: str) -> OutboxMail:
    """Record a message for delivery (in the caller's transaction)."""
    mail = OutboxMail(to_address=to, subject=subject, body=body)
    session.add(mail)
    return mail


def deliver(session: Session, mail: OutboxMail) -> None:
    """Send a recorded message through SMTP if configured; in dev it stays in the outbox."""
    settings = get_settings()
    if not settings.smtp_host:
        return
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = mail.to_address
    message["Subject"] = mail.subject
    message.set_content(mail.body)
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=10) as smtp:
            smtp.starttls()
            if settings.smtp_username and settings.smtp_password:
                smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        log.warning("mail %s to %s not delivered: %s", mail.id, mail.to_address, type(exc).__name__)
        return
    mail.sent_at = utcnow()
    session.commit()


def recent(session: Session, limit: int = 50, to: str | None = None) -> list[OutboxMail]:
    """The newest recorded messages (for the dev mailbox and tests)."""
    query = select(OutboxMail).order_by(OutboxMail.id.desc()).limit(limit)
    if to is not None:
        query = query.where(OutboxMail.to_address == to)
    return list(session.scalars(query))
