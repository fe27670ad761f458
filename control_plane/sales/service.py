"""Sales actions: create an Enterprise customer in one transaction, and read customers as the console shows them.

A customer is an organization whose owner (an account made with no password if the email has none) is invited by
mail: the link sets the owner's password, and the workspace, which waits for it as its initial admin, is handed
the owner as its first system admin. The salesperson never becomes an admin of the customer's workspace.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from control_plane.audit import service as audit
from control_plane.contracts import service as contracts
from control_plane.contracts.schemas import contract_detail
from control_plane.core.authz import Permission, Principal
from control_plane.core.problems import NotFound
from control_plane.core.security import has_password
from control_plane.core.settings import get_settings
from control_plane.mail import service as mail
from control_plane.organizations import service as organizations
from control_plane.organizations.models import Organization
from control_plane.sales import repository
from control_plane.sales.schemas import CustomerCreate, CustomerOut
from control_plane.workspaces import service as workspaces
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Tier
from control_plane.workspaces.schemas import workspace_out

MAX_CUSTOMERS = 200


@dataclass(frozen=True)
class CustomerCreated:
    """What creating a customer made (the caller starts the workspace's provisioning and the contract run)."""

    organization_id: uuid.UUID
    contract_id: uuid.UUID
    workspace_id: uuid.UUID


def create_customer(session: Session, principal: Principal, body: CustomerCreate) -> CustomerCreated:
    """The organization with its owner (invited by mail when they have no password yet), its contract (first
    annual invoice) and its Enterprise workspace, provisioning, whose initial admin is the owner (not committed;
    each piece audited, and ``customer.create``). 403 unless the caller may create organizations, contracts and
    Enterprise workspaces."""
    for permission in (
        Permission.create_organization,
        Permission.manage_contracts,
        Permission.create_enterprise_workspace,
    ):
        principal.require(permission)
    org = organizations.create_for_owner_email(session, principal, body.name, str(body.owner_email))
    contract = contracts.create(session, principal, org.id, body.contract)
    ws = workspaces.new_workspace(
        session,
        organization_id=org.id,
        slug=body.workspace.slug,
        display_name=body.workspace.display_name,
        tier=Tier.enterprise,
        region=body.workspace.region,
        state=Lifecycle.provisioning,
        actor=principal.actor,
        initial_admin=workspaces.initial_admin_for(session, principal, org.id),
    )
    owner = organizations.first_owner(session, org.id)
    if owner is not None and has_password(owner.password_hash):
        _tell_owner(session, owner.email, org.name, ws.slug)
    audit.record(
        session,
        actor=principal.actor,
        action="customer.create",
        target_type="organization",
        target_id=org.id,
        organization_id=org.id,
        after={"name": org.name, "contract_id": str(contract.id), "workspace_id": str(ws.id)},
    )
    return CustomerCreated(org.id, contract.id, ws.id)


def _tell_owner(session: Session, email: str, organization: str, slug: str) -> None:
    """Mail an owner who has a Canopy password already (they get no invitation) that their workspace is coming."""
    mail.queue(
        session,
        email,
        f"Your Enterprise workspace for {organization} is being set up",
        f"Canopy is setting up {slug}.{get_settings().base_domain}, the Enterprise workspace of {organization}.\n\n"
        "You are its first system admin: sign in to it with your Canopy email and password once it is ready.\n\n"
        f"{get_settings().public_url}/workspaces\n",
    )


def customer_out(session: Session, org: Organization) -> CustomerOut:
    """Where the customer stands: owner, contract, workspaces."""
    owner = organizations.first_owner(session, org.id)
    contract = contracts.for_organization(session, org.id)
    return CustomerOut(
        organization_id=org.id,
        name=org.name,
        created_at=org.created_at,
        owner_email=owner.email if owner else None,
        owner_has_signed_up=owner is not None and has_password(owner.password_hash),
        contract=contract_detail(contracts.view(session, contract)) if contract else None,
        workspaces=[workspace_out(ws) for ws in repository.live_workspaces(session, org.id)],
    )


def customers(session: Session, principal: Principal) -> list[CustomerOut]:
    """The customers the caller may see (customers' own roles: their own organization), newest first."""
    organization_id = None if principal.is_staff else principal.organization_id
    return [customer_out(session, org) for org in repository.customers(session, organization_id, MAX_CUSTOMERS)]


def customer(session: Session, principal: Principal, organization_id: uuid.UUID) -> CustomerOut:
    """One customer (404 for an organization the caller may not see or that is no customer)."""
    visible = organization_id if principal.can_see(organization_id) else None
    found = repository.customers(session, visible, 1) if visible else []
    if not found:
        raise NotFound("Customer")
    return customer_out(session, found[0])
