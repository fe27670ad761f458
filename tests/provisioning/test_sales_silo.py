"""The sales flow on the moto + test-cluster harness (aws provider): the sales API creates an Enterprise customer;
its silo (key, bucket, RDS instance, EKS cluster and nodegroup, the pods' role, DNS record), tagged ``canopy:*``,
exists in moto and its server objects on the test cluster, with no initial admin handed over yet; once the owner
sets a password from the mailed invitation, the reconcile hands the owner (never the salesperson) to the server in
its Secret, the pods restart once to create it, and the control plane forgets the hash.

The harness's silo database is moto's RDS (no PostgreSQL behind it), so a silo's server cannot run here and sign-in
is not tried: the Secret the server reads at start is what is checked (the local runtime's Chromium test signs the
owner in, ``tests/web/test_sales_browser.py``)."""

from __future__ import annotations

import base64
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

import boto3
import pytest

from control_plane.core.authz import Role
from control_plane.core.db import session_scope
from control_plane.kube.client import KubeClient
from control_plane.kube.render import CHECKSUM_ANNOTATION, SECRET_NAME
from control_plane.mail import service as mail
from control_plane.reconciler.queue import Cause, defer_reconcile
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import LATE_ADMIN_OUTPUT, Tier
from infra.conventions import TAG_ORG, TAG_TIER, TAG_WORKSPACE, tag_filters, tags_from_list, workspace_names
from tests.aws.conftest import SILO_DOMAIN
from tests.provisioning.conftest import aws_resources
from tests.reconciler.conftest import Plane

pytestmark = pytest.mark.slow
OWNER_PASSWORD = "the owner's own passphrase"
SILO_RESOURCES = {"kms key", "s3 bucket", "rds db", "eks cluster", "eks nodegroup", "iam oidc-provider", "iam role"}
INVITATION = re.compile(r"/invitations/(invite_[A-Za-z0-9_-]{43})")
ADMIN_EMAIL = "WS_INITIAL_ADMIN_EMAIL"


def invitation_link(email: str) -> str:
    with session_scope() as session:
        bodies = [m.body for m in mail.recent(session, limit=10, to=email)]
    found = [match.group(0) for body in bodies if (match := INVITATION.search(body))]
    assert found, bodies
    return found[0]


def secret_env(kube: KubeClient, namespace: str) -> dict[str, str]:
    secret = kube.get("v1", "Secret", SECRET_NAME, namespace)
    assert secret is not None
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def checksum(kube: KubeClient, namespace: str) -> str:
    deployment = kube.get("apps/v1", "Deployment", "workspace-server", namespace)
    assert deployment is not None
    return str(deployment["spec"]["template"]["metadata"]["annotations"][CHECKSUM_ANNOTATION])


@contextmanager
def admins_seen(kube: KubeClient, namespace: str) -> Iterator[set[str]]:
    """Every initial admin the server's Secret names while the block runs (polled)."""
    seen: set[str] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.05):
            admin = secret_env(kube, namespace).get(ADMIN_EMAIL)
            if admin:
                seen.add(admin)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield seen
    finally:
        stop.set()
        watcher.join(5)


def customer(slug: str, owner_email: str) -> dict[str, object]:
    return {
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


def test_sales_creates_a_silo_whose_first_admin_is_the_owner(plane: Plane, kube: KubeClient) -> None:
    started = time.monotonic()
    slug = f"sales{uuid.uuid4().hex[:6]}"
    owner_email = f"owner@{slug}.example.com"
    if not plane.workers:
        plane.start_worker()
    created = plane.api.post(
        "/api/v1/sales/customers", json=customer(slug, owner_email), headers=plane.staff_headers(Role.sales)
    )
    assert created.status_code == 201, created.text
    ws_id = uuid.UUID(created.json()["workspaces"][0]["id"])
    plane.workspace_ids.append(ws_id)
    ws = plane.wait_state(ws_id, Lifecycle.active, timeout=180)
    provisioned = time.monotonic() - started
    assert ws.tier is Tier.enterprise and ws.cell is None and ws.endpoint_url == f"https://{slug}.{SILO_DOMAIN}"
    assert all(c["status"] == "True" for c in ws.conditions), ws.conditions
    found = aws_resources(ws_id)
    assert set(found) >= SILO_RESOURCES, found
    pages = boto3.client("resourcegroupstaggingapi").get_paginator("get_resources")
    filters = tag_filters({TAG_WORKSPACE: str(ws_id)})
    tagged = [item for page in pages.paginate(TagFilters=filters) for item in page["ResourceTagMappingList"]]
    assert tagged
    for item in tagged:
        tags = tags_from_list(item["Tags"])
        assert (tags[TAG_ORG], tags[TAG_TIER]) == (str(ws.organization_id), "enterprise"), item
    namespace = workspace_names("test", ws_id).namespace
    assert ws.initial_admin_email == owner_email and ws.initial_admin_password_hash is None
    assert ADMIN_EMAIL not in secret_env(kube, namespace), "nobody handed over before the owner has a password"
    before = checksum(kube, namespace)

    link = invitation_link(owner_email)
    page = plane.api.get(link)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert page.status_code == 200 and csrf, page.text
    with admins_seen(kube, namespace) as seen:
        form = {"password": OWNER_PASSWORD, "csrf_token": csrf.group(1)}
        accepted = plane.api.post(link, data=form, follow_redirects=False)
        assert accepted.status_code == 303, accepted.text
        handed = plane.wait_for(
            ws_id, lambda row: dict(row.outputs.get("created") or {}).get("initial_admin") == 1, timeout=120
        )
    assert seen == {owner_email}, "the owner, and only the owner, was handed to the server"
    assert handed.initial_admin_password_hash is None, "forgotten once the rollout carrying it completed"
    assert handed.outputs[LATE_ADMIN_OUTPUT] == owner_email and handed.lifecycle_state is Lifecycle.active
    assert ADMIN_EMAIL not in secret_env(kube, namespace)
    after = checksum(kube, namespace)
    assert after != before, "the pods restarted once, so that the server created the owner at start"
    defer_reconcile(ws_id, Cause.operator)
    plane.wait_for(ws_id, lambda row: row.last_reconciled_at > handed.last_reconciled_at, timeout=60)
    assert checksum(kube, namespace) == after, "and only once"
    print(f"sales silo: active in {provisioned:.1f}s, owner handed over after {time.monotonic() - started:.1f}s")
