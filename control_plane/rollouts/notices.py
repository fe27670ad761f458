"""Mail to operators about a rollout that needs them."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from control_plane.accounts.models import Account
from control_plane.core.authz import Role
from control_plane.core.settings import get_settings
from control_plane.mail import service as mail
from control_plane.rollouts.models import Rollout


def tell_operators(session: Session, rollout: Rollout, reason: str) -> int:
    """Queue a mail to every operator and admin account saying that the rollout paused and why; returns how many."""
    query = select(Account.email).where(Account.staff_role.in_([Role.operator, Role.admin]))
    link = f"{get_settings().public_url}/operations/rollouts/{rollout.id}"
    subject = f"Rollout of {rollout.release_version} paused"
    body = (
        f"The rollout {rollout.id} of workspace-server release {rollout.release_version} paused itself:\n\n"
        f"{reason}\n\nRead it and decide (resume, roll back or abort): {link}\n"
        "Runbook: runbooks/rollout-paused.md\n"
    )
    addresses = list(session.scalars(query))
    for address in addresses:
        mail.queue(session, address, subject, body)
    return len(addresses)
