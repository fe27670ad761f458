"""The sales flow on the moto + test-cluster harness (aws provider, process-mode kubelet, stand-in ingress): the
sales API creates an Enterprise customer; its silo's resources exist in moto with the ``canopy:*`` tags and the
workspace runs on the test cluster with nobody to sign in; once the owner sets a password from the mailed
invitation, the server makes the owner (never the salesperson) its first system admin: the owner logs in through
the ingress at the workspace's public address."""

from __future__ import annotations

import re
import ssl
import time
import uuid
from datetime import date

import boto3
import httpx
import pytest

from control_plane.core.authz import Role
from control_plane.core.db import session_scope
from control_plane.mail import service as mail
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Tier
from infra.conventions import TAG_ORG, TAG_TIER, TAG_WORKSPACE, tag_filters, tags_from_list
from tests.aws.conftest import SILO_DOMAIN
from tests.harness.ingress import StandInIngress
from tests.provisioning.conftest import aws_resources
from tests.reconciler.conftest import Plane
from tests.waiting import wait_until

pytestmark = pytest.mark.slow
OWNER_PASSWORD = "the owner's own passphrase"
SILO_RESOURCES = {"kms key", "s3 bucket", "rds db", "eks cluster", "eks nodegroup", "iam oidc-provider"}
INVITATION = re.compile(r"/invitations/(invite_[A-Za-z0-9_-]{43})")


def login(ingress: StandInIngress, url: str, email: str, password: str) -> httpx.Response:
    """Sign in to the workspace at its public address, through the stand-in ingress."""
    with httpx.Client(proxy=ingress.url, verify=ssl.create_default_context(cafile=ingress.ca_file)) as client:
        return client.post(f"{url}/api/v4/users/login", json={"login_id": email, "password": password}, timeout=10)


def invitation_link(email: str) -> str:
    with session_scope() as session:
        bodies = [m.body for m in mail.recent(session, limit=10, to=email)]
    found = [match.group(0) for body in bodies if (match := INVITATION.search(body))]
    assert found, bodies
    return found[0]


def test_sales_creates_a_silo_whose_first_admin_is_the_owner(plane: Plane, ingress: StandInIngress) -> None:
    started = time.monotonic()
    slug = f"sales{uuid.uuid4().hex[:6]}"
    owner_email = f"owner@{slug}.example.com"
    body = {
        "name": f"Acme {slug}",
        "owner_email": owner_email,
        "contract": {
            "seats_purchased": 10,
            "annual_price_per_seat_cents": 12000,
            "start_date": date.today().isoformat(),
            "billing_contact_email": f"ap@{slug}.example.com",
            "billing_contact_name": "Accounts Payable",
        },
        "workspace": {"slug": slug},
    }
    if not plane.workers:
        plane.start_worker()
    created = plane.api.post("/api/v1/sales/customers", json=body, headers=plane.staff_headers(Role.sales))
    assert created.status_code == 201, created.text
    [made] = created.json()["workspaces"]
    ws_id = uuid.UUID(made["id"])
    plane.workspace_ids.append(ws_id)
    ws = plane.wait_state(ws_id, Lifecycle.active, timeout=180)
    provisioned = time.monotonic() - started
    assert ws.tier is Tier.enterprise and ws.cell is None and ws.endpoint_url == f"https://{slug}.{SILO_DOMAIN}"
    assert all(c["status"] == "True" for c in ws.conditions), ws.conditions
    found = aws_resources(ws_id)
    assert set(found) >= SILO_RESOURCES, found
    pages = boto3.client("resourcegroupstaggingapi").get_paginator("get_resources")
    tagged = [
        item
        for page in pages.paginate(TagFilters=tag_filters({TAG_WORKSPACE: str(ws_id)}))
        for item in page["ResourceTagMappingList"]
    ]
    for item in tagged:
        tags = tags_from_list(item["Tags"])
        assert (tags[TAG_ORG], tags[TAG_TIER]) == (str(ws.organization_id), "enterprise"), item
    assert ws.initial_admin_email == owner_email and ws.initial_admin_password_hash is None
    assert login(ingress, ws.endpoint_url, owner_email, OWNER_PASSWORD).status_code == 401, "nobody to sign in yet"

    link = invitation_link(owner_email)
    page = plane.api.get(link)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert page.status_code == 200 and csrf, page.text
    accepted = plane.api.post(
        link, data={"password": OWNER_PASSWORD, "csrf_token": csrf.group(1)}, follow_redirects=False
    )
    assert accepted.status_code == 303, accepted.text

    wait_until(
        "the owner handed over to the silo's server",
        lambda: login(ingress, str(ws.endpoint_url), owner_email, OWNER_PASSWORD).status_code == 200,
        120,
    )
    signed_in = login(ingress, str(ws.endpoint_url), owner_email, OWNER_PASSWORD)
    token = signed_in.headers["Token"]
    with httpx.Client(
        proxy=ingress.url,
        verify=ssl.create_default_context(cafile=ingress.ca_file),
        headers={"Authorization": f"Bearer {token}"},
    ) as owner:
        me = owner.get(f"{ws.endpoint_url}/api/v4/users/me", timeout=10).json()
        users = owner.get(f"{ws.endpoint_url}/api/v4/users", params={"per_page": 200}, timeout=10).json()
    assert "system_admin" in me["roles"].split() and me["email"] == owner_email
    assert [u["email"] for u in users] == [owner_email], "the owner only: no salesperson, no staff"
    handed = plane.wait_for(ws_id, lambda row: row.initial_admin_password_hash is None, 60)
    assert handed.lifecycle_state is Lifecycle.active
    print(f"sales silo: active in {provisioned:.1f}s, owner signed in after {time.monotonic() - started:.1f}s")
