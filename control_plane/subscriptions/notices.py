"""Billing mail to an organization's owners and billing members, each notice sent once (by its key)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.orm import Session

from billing.engine.money import format_cents
from billing.engine.trial import TrialNotice
from control_plane.core.settings import Settings
from control_plane.mail import service as mail
from control_plane.subscriptions import repository
from control_plane.subscriptions.models import Invoice

TRIAL_SUBJECTS = {
    TrialNotice.seven_days_left: "Your Canopy trial ends in 7 days",
    TrialNotice.one_day_left: "Your Canopy trial ends tomorrow",
    TrialNotice.last_day: "Your Canopy trial ends today",
}


def billing_page_url(settings: Settings, organization_id: uuid.UUID) -> str:
    """Where the organization's owners and billing members manage billing."""
    return f"{settings.public_url.rstrip('/')}/billing/{organization_id}"


def send_once(session: Session, organization_id: uuid.UUID, key: str, subject: str, body: str, now: datetime) -> bool:
    """Mail every billing contact unless notice ``key`` went out already (in the caller's transaction)."""
    if not repository.claim_notice(session, organization_id, key, now):
        return False
    for address in repository.billing_contacts(session, organization_id):
        mail.queue(session, address, subject, body)
    return True


def trial_notice(
    session: Session,
    settings: Settings,
    organization_id: uuid.UUID,
    notice: TrialNotice,
    ends_at: datetime,
    now: datetime,
) -> None:
    """A "your trial ends in N days" mail."""
    body = (
        f"Your Canopy Professional trial ends on {ends_at:%A %d %B %Y at %H:%M} UTC.\n\n"
        f"Add a card to keep posting after that: {billing_page_url(settings, organization_id)}\n"
        "Without one your workspace becomes read-only (nothing is deleted) until a card is added.\n"
    )
    send_once(session, organization_id, f"trial:{notice.value}", TRIAL_SUBJECTS[notice], body, now)


def suspended(session: Session, settings: Settings, organization_id: uuid.UUID, reason: str, now: datetime) -> None:
    """The workspaces became read-only (``reason`` says why)."""
    body = (
        f"{reason} Your Canopy workspaces are now read-only: everyone can still sign in, read and search, "
        "but nobody can post or upload. Nothing has been deleted.\n\n"
        f"Add a card to reactivate them at once: {billing_page_url(settings, organization_id)}\n"
    )
    send_once(session, organization_id, f"suspended:{now.isoformat()}", "Your Canopy workspace is read-only", body, now)


def payment_failed(
    session: Session, settings: Settings, invoice: Invoice, attempt: int, retry_at: datetime | None, now: datetime
) -> None:
    """A charge of ``invoice`` failed (``retry_at``: when it is tried again, ``None`` after the last try)."""
    amount = format_cents(invoice.amount_cents, invoice.currency)
    then = f"We will try again on {retry_at:%d %B %Y}." if retry_at else "That was the last attempt."
    body = (
        f"We could not charge {amount} for Canopy ({invoice.period}): {invoice.last_failure or 'the card failed'}.\n"
        f"{then} Update your card: {billing_page_url(settings, invoice.organization_id)}\n"
    )
    key = f"payment-failed:{invoice.id}:{attempt}"
    send_once(session, invoice.organization_id, key, f"Payment of {amount} failed", body, now)


def payment_succeeded(session: Session, settings: Settings, invoice: Invoice, now: datetime) -> None:
    """``invoice`` is paid."""
    amount = format_cents(invoice.amount_cents, invoice.currency)
    body = (
        f"Thank you: {amount} for Canopy ({invoice.period}) is paid.\n"
        f"Invoices: {billing_page_url(settings, invoice.organization_id)}\n"
    )
    send_once(session, invoice.organization_id, f"paid:{invoice.id}", f"Receipt: {amount} for Canopy", body, now)
