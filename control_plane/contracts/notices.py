"""Contract mail to the billing contact and the organization's owners, each notice once (by its key)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from billing.engine.contracts import LicencePhase, grace_end
from billing.engine.money import format_cents
from control_plane.accounts import repository as accounts
from control_plane.contracts import repository
from control_plane.contracts.models import Contract, ContractInvoice, ContractInvoiceKind
from control_plane.mail import service as mail

LICENCE_SUBJECTS = {
    LicencePhase.notice_60: "Your Canopy Enterprise licence ends in 60 days",
    LicencePhase.notice_30: "Your Canopy Enterprise licence ends in 30 days",
    LicencePhase.notice_7: "Your Canopy Enterprise licence ends in 7 days",
    LicencePhase.grace: "Your Canopy Enterprise licence has expired: 10 days of grace",
    LicencePhase.read_only: "Your Canopy Enterprise workspaces are read-only",
}


def contacts(session: Session, contract: Contract) -> list[str]:
    """Where contract mail goes: the billing contact, then the organization's owners."""
    owners = accounts.owner_emails(session, contract.organization_id)
    return list(dict.fromkeys([contract.billing_contact_email, *owners]))


def send_once(session: Session, contract: Contract, key: str, subject: str, body: str, now: datetime) -> bool:
    """Mail every contact unless notice ``key`` went out already (in the caller's transaction)."""
    if not repository.claim_notice(session, contract.id, key, now):
        return False
    for address in contacts(session, contract):
        mail.queue(session, address, subject, body)
    return True


def licence(session: Session, contract: Contract, phase: LicencePhase, now: datetime) -> bool:
    """The notice of licence ``phase`` for the contract's current end (once per end date)."""
    ends = f"{contract.end_date:%d %B %Y}"
    bodies = {
        LicencePhase.grace: (
            f"Your Canopy Enterprise contract ended on {ends}. Your workspaces keep working until "
            f"{grace_end(contract.end_date):%d %B %Y}; after that they become read-only until the contract is renewed."
        ),
        LicencePhase.read_only: (
            "Your Canopy Enterprise contract was not renewed and its grace is over: your workspaces are read-only. "
            "Everyone can still sign in, read, search and export; nothing has been deleted. Renewing restores writing."
        ),
    }
    body = bodies.get(phase, f"Your Canopy Enterprise contract ends on {ends}. Contact your account manager to renew.")
    key = f"licence:{phase.value}:{contract.end_date.isoformat()}"
    return send_once(session, contract, key, LICENCE_SUBJECTS[phase], body + "\n", now)


def issued(session: Session, contract: Contract, invoice: ContractInvoice, now: datetime) -> bool:
    """The invoice was issued: what it is for, the amount and when it is due, payable by bank transfer."""
    amount = format_cents(invoice.amount_cents, contract.currency)
    what = (
        f"contract year {invoice.contract_year}"
        if invoice.kind is ContractInvoiceKind.annual
        else f"true-forward after quarter {invoice.quarter} of contract year {invoice.contract_year}"
    )
    body = (
        f"Canopy Enterprise invoice {invoice.id} ({what}): {amount} for {invoice.seats} seats, "
        f"due on {invoice.due_at:%d %B %Y}.\n"
        f"Pay by bank transfer quoting reference {invoice.id}.\n"
    )
    return send_once(session, contract, f"issued:{invoice.id}", f"Canopy invoice: {amount} due", body, now)


def overdue(session: Session, contract: Contract, invoice: ContractInvoice, now: datetime) -> bool:
    """The invoice is past due (once per invoice)."""
    amount = format_cents(invoice.amount_cents, contract.currency)
    body = (
        f"Canopy Enterprise invoice {invoice.id} of {amount} was due on {invoice.due_at:%d %B %Y} and we have not "
        f"received the payment yet. Please pay by bank transfer quoting reference {invoice.id}.\n"
    )
    return send_once(session, contract, f"overdue:{invoice.id}", f"Overdue: Canopy invoice of {amount}", body, now)
