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


def _smtp_send(mail: OutboxMail) -> None:
    settings = get_settings()
    assert settings.smtp_host
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = mail.to_address
    message["Subject"] = mail.subject
    message.set_content(mail.body)
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=10) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_username and settings.smtp_password:
            smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
        smtp.send_message(message)


def deliver_pending(session: Session, batch: int = 50) -> int:
    """Send unsent messages through SMTP (transactional outbox); returns how many went out.

    Rows are claimed with ``FOR UPDATE SKIP LOCKED`` so several workers share the work; a message
    that fails stays unsent and is tried again on the next run. Without SMTP nothing is sent and
    the outbox is the mailbox (``/dev/mail``).
    """
    if not get_settings().smtp_host:
        return 0
    query = (
        select(OutboxMail)
        .where(OutboxMail.sent_at.is_(None))
        .order_by(OutboxMail.id)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    sent = 0
    for mail in session.scalars(query):
        try:
            _smtp_send(mail)
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("mail %s not delivered yet: %s", mail.id, type(exc).__name__)
            continue
        mail.sent_at = utcnow()
        sent += 1
    session.commit()
    return sent


def recent(session: Session, limit: int = 50, to: str | None = None) -> list[OutboxMail]:
    """The newest recorded messages (for the dev mailbox and tests)."""
    query = select(OutboxMail).order_by(OutboxMail.id.desc()).limit(limit)
    if to is not None:
        query = query.where(OutboxMail.to_address == to)
    return list(session.scalars(query))
