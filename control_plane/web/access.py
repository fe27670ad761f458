"""Which workspaces a signed-in account may see (those of its organizations), and their page paths."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from control_plane.accounts import repository as accounts_repo
from control_plane.accounts.models import Account, Membership
from control_plane.core.authz import GRANTS, Permission, Principal
from control_plane.workspaces import repository as workspaces_repo
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Workspace


def member_organizations(session: Session, account: Account) -> list[uuid.UUID]:
    """The organizations ``account`` belongs to, in any role."""
    return list(session.scalars(select(Membership.organization_id).where(Membership.account_id == account.id)))


def workspaces_of(session: Session, account: Account) -> list[Workspace]:
    """The account's workspaces across its organizations, newest first (deleted ones left out)."""
    return list(
        session.scalars(
            select(Workspace)
            .where(
                Workspace.organization_id.in_(member_organizations(session, account)),
                Workspace.lifecycle_state != Lifecycle.deleted,
            )
            .order_by(Workspace.created_at.desc(), Workspace.id.desc())
        )
    )


def own_workspace(session: Session, account: Account, raw_id: str) -> Workspace | None:
    """The workspace if it belongs to one of the account's organizations (None for anything else)."""
    try:
        workspace_id = uuid.UUID(raw_id)
    except ValueError:
        return None
    ws = workspaces_repo.get(session, workspace_id)
    if ws is None or ws.organization_id not in member_organizations(session, account):
        return None
    return ws


def deleter(session: Session, account: Account, ws: Workspace) -> Principal | None:
    """The account acting in the workspace's organization, when its role there may delete (and undelete) it."""
    role = accounts_repo.membership_role(session, account.id, ws.organization_id)
    if role is None or role not in GRANTS[Permission.delete_workspace]:
        return None
    return Principal(account_id=account.id, role=role, organization_id=ws.organization_id)


OPERATIONS_PERMISSIONS = (Permission.purge_workspace, Permission.delete_workspace, Permission.drill_backups)


def operator(account: Account | None) -> Principal | None:
    """The account acting with its staff role, when that role may do all the operations page does (operators and
    admins); the session's account carries its staff role as the API token of a password sign-in does."""
    role = account.staff_role if account is not None else None
    if role is None or any(role not in GRANTS[permission] for permission in OPERATIONS_PERMISSIONS):
        return None
    assert account is not None
    return Principal(account_id=account.id, role=role, organization_id=None)


def staff_with(account: Account | None, permission: Permission) -> Principal | None:
    """The account acting with its staff role, when that role has ``permission`` (None otherwise)."""
    role = account.staff_role if account is not None else None
    if role is None or role not in GRANTS[permission]:
        return None
    assert account is not None
    return Principal(account_id=account.id, role=role, organization_id=None)


def delete_path(ws: Workspace) -> str:
    """The delete form's action."""
    return f"/workspaces/{ws.id}/delete"


def cancel_deletion_path(ws: Workspace) -> str:
    """The cancel-deletion form's action."""
    return f"/workspaces/{ws.id}/cancel-deletion"


def progress_path(ws: Workspace) -> str:
    """The provisioning progress page."""
    return f"/signup/workspaces/{ws.id}/progress"


def status_path(ws: Workspace) -> str:
    """The JSON status the progress page polls."""
    return f"/signup/workspaces/{ws.id}/status"


def ready_path(ws: Workspace) -> str:
    """The page saying where the ready workspace is."""
    return f"/signup/workspaces/{ws.id}/ready"
