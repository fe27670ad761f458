"""Roles, who is calling, and what each role may do (permissions declared as data)."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass

from sqlalchemy import Enum

from control_plane.core.problems import Forbidden


class Role(enum.StrEnum):
    """Roles an account or token can hold. ``owner``/``billing`` are per organization; the rest are staff."""

    owner = "owner"
    billing = "billing"
    sales = "sales"
    operator = "operator"
    support = "support"
    admin = "admin"
    finance = "finance"


STAFF_ROLES = frozenset({Role.sales, Role.operator, Role.support, Role.admin, Role.finance})
ORG_ROLES = frozenset({Role.owner, Role.billing})


def role_enum() -> Enum:
    """The PostgreSQL enum type of roles."""
    return Enum(Role, name="role", values_callable=lambda e: [m.value for m in e])


class Permission(enum.StrEnum):
    """Actions checked by the API."""

    create_organization = "create_organization"
    create_workspace = "create_workspace"
    delete_workspace = "delete_workspace"
    purge_workspace = "purge_workspace"
    hibernate_workspace = "hibernate_workspace"
    wake_workspace = "wake_workspace"
    export_workspace = "export_workspace"
    back_up_workspace = "back_up_workspace"
    restore_workspace = "restore_workspace"
    read_backups = "read_backups"
    manage_tokens = "manage_tokens"
    read_audit = "read_audit"
    manage_cells = "manage_cells"
    read_members = "read_members"
    manage_members = "manage_members"
    read_billing = "read_billing"
    manage_billing = "manage_billing"
    drill_backups = "drill_backups"
    read_releases = "read_releases"
    manage_releases = "manage_releases"
    set_maintenance_window = "set_maintenance_window"
    manage_contracts = "manage_contracts"
    read_contracts = "read_contracts"
    record_payments = "record_payments"
    create_enterprise_workspace = "create_enterprise_workspace"


R = Role
GRANTS: dict[Permission, frozenset[Role]] = {
    Permission.create_organization: frozenset({R.sales, R.admin}),
    Permission.create_workspace: frozenset({R.owner, R.sales, R.admin}),
    Permission.delete_workspace: frozenset({R.owner, R.operator, R.admin}),
    Permission.purge_workspace: frozenset({R.operator, R.admin}),
    Permission.hibernate_workspace: frozenset({R.owner, R.operator, R.admin}),
    Permission.wake_workspace: frozenset({R.owner, R.operator, R.admin}),
    Permission.export_workspace: frozenset({R.owner, R.operator, R.admin}),
    Permission.back_up_workspace: frozenset({R.owner, R.operator, R.admin}),
    Permission.restore_workspace: frozenset({R.owner, R.operator, R.admin}),
    Permission.read_backups: frozenset({R.owner, R.support, R.operator, R.admin}),
    Permission.manage_tokens: frozenset(Role),
    Permission.read_audit: frozenset({R.owner, R.support, R.operator, R.admin}),
    Permission.manage_cells: frozenset({R.operator, R.admin}),
    Permission.read_members: frozenset(Role),
    Permission.manage_members: frozenset({R.owner, R.admin}),
    Permission.read_billing: frozenset({R.owner, R.billing, R.support, R.admin}),
    Permission.manage_billing: frozenset({R.owner, R.billing, R.admin}),
    Permission.drill_backups: frozenset({R.operator, R.admin}),
    Permission.read_releases: frozenset({R.operator, R.support, R.admin}),
    Permission.manage_releases: frozenset({R.operator, R.admin}),
    Permission.set_maintenance_window: frozenset({R.owner, R.operator, R.admin}),
    Permission.manage_contracts: frozenset({R.sales, R.admin}),
    Permission.read_contracts: frozenset({R.owner, R.billing, R.sales, R.finance, R.support, R.admin}),
    Permission.record_payments: frozenset({R.finance, R.admin}),
    Permission.create_enterprise_workspace: frozenset({R.sales, R.admin}),
}


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: an account acting through one token with one role."""

    account_id: uuid.UUID
    role: Role
    organization_id: uuid.UUID | None
    token_id: uuid.UUID | None = None

    @property
    def actor(self) -> str:
        """How audit entries name this caller."""
        via = f" via token {self.token_id}" if self.token_id else ""
        return f"account:{self.account_id} ({self.role.value}){via}"

    @property
    def is_staff(self) -> bool:
        """Staff roles act across organizations."""
        return self.role not in ORG_ROLES

    def can_see(self, organization_id: uuid.UUID) -> bool:
        """Whether the caller may know that something of ``organization_id`` exists."""
        return self.is_staff or self.organization_id == organization_id

    def require(self, permission: Permission) -> None:
        """Raise 403 unless the caller's role grants ``permission``."""
        if self.role not in GRANTS[permission]:
            raise Forbidden(f"The {self.role.value} role may not {permission.value.replace('_', ' ')}")
