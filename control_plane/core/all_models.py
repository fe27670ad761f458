"""Imports every table so that metadata (and Alembic) sees the whole schema."""

from control_plane.accounts.models import Account, EmailVerification, Membership, WebSession
from control_plane.audit.models import AuditEntry
from control_plane.backups.drill_models import BackupDrill
from control_plane.backups.models import WorkspaceBackup, WorkspaceRestore
from control_plane.cells.models import Cell
from control_plane.contracts.models import Contract, ContractInvoice, ContractNotice
from control_plane.core.db import Base
from control_plane.core.models import IdempotencyRecord, RateLimitCounter
from control_plane.credentials.models import WorkspaceCredential
from control_plane.drift.models import DriftCursor
from control_plane.exports.models import WorkspaceExport
from control_plane.mail.models import OutboxMail
from control_plane.moves.models import EnterpriseMove
from control_plane.organizations.models import Invitation, Organization
from control_plane.releases.models import Release
from control_plane.rollouts.models import Rollout, RolloutTarget
from control_plane.subscriptions.models import (
    BillingNotice,
    BillingReconciliation,
    Invoice,
    SeatSnapshot,
    StripeEvent,
    Subscription,
)
from control_plane.tokens.models import ApiToken
from control_plane.workspaces.models import Workspace

__all__ = [
    "Account",
    "ApiToken",
    "AuditEntry",
    "BackupDrill",
    "Base",
    "BillingNotice",
    "BillingReconciliation",
    "Cell",
    "Contract",
    "ContractInvoice",
    "ContractNotice",
    "DriftCursor",
    "EmailVerification",
    "EnterpriseMove",
    "IdempotencyRecord",
    "Invitation",
    "Invoice",
    "Membership",
    "Organization",
    "OutboxMail",
    "RateLimitCounter",
    "Release",
    "Rollout",
    "RolloutTarget",
    "SeatSnapshot",
    "StripeEvent",
    "Subscription",
    "WebSession",
    "Workspace",
    "WorkspaceBackup",
    "WorkspaceCredential",
    "WorkspaceExport",
    "WorkspaceRestore",
]
