"""Expiry without renewal, end to end on a real Enterprise workspace server: after the grace the control plane's
plan makes the workspace read-only (posts refused, reading works), renewal restores writing, every post is still
there (``mattermostdriver``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from mattermostdriver import Driver

from control_plane.core.authz import Role
from control_plane.core.clock import utcnow
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Tier
from tests.billed_plane import BilledPlane
from tests.contracts.conftest import contract_run
from tests.waiting import wait_until


def try_post(driver: Driver, channel_id: str, message: str) -> bool:
    """Whether the server took the post."""
    try:
        driver.posts.create_post({"channel_id": channel_id, "message": message})
    except Exception:  # mattermostdriver raises one class per refusal status
        return False
    return True


def test_read_only_after_grace_and_renewal_restores_writing(billed: BilledPlane) -> None:
    plane = billed.plane
    plane.start_worker()
    workspace_id = plane.create_workspace("ctexpiry", tier=Tier.enterprise)
    billed.settled(workspace_id, Lifecycle.active)
    org = plane.row(workspace_id).organization_id
    sales = plane.staff_headers(Role.sales)
    body = {
        "organization_id": str(org),
        "seats_purchased": 5,
        "annual_price_per_seat_cents": 10_000,
        "start_date": utcnow().date().isoformat(),
        "billing_contact_email": "ap@ctexpiry.example",
        "billing_contact_name": "AP",
    }
    contract = plane.api.post("/api/v1/contracts", json=body, headers=sales).json()
    contract_id = uuid.UUID(contract["id"])
    admin = billed.driver(workspace_id, "ctexpiry.admin@example.com")
    team_id = admin.teams.get_user_teams("me")[0]["id"]
    channel_id = admin.channels.get_channel_by_name(team_id, "town-square")["id"]
    written = [f"before expiry {n}" for n in range(3)]
    for message in written:
        assert try_post(admin, channel_id, message)

    grace_over = datetime.fromisoformat(contract["end_date"]).replace(tzinfo=UTC) + timedelta(days=10, hours=1)
    billed.advance(grace_over - utcnow())
    assert contract_run(contract_id).reconcile == [workspace_id]  # the workers resend the plan
    wait_until("posts are refused once the licence is read-only", lambda: not try_post(admin, channel_id, "probe"), 60)
    messages = {post["message"] for post in admin.posts.get_posts_for_channel(channel_id)["posts"].values()}
    assert set(written) <= messages  # reading still works

    renewed = plane.api.post(f"/api/v1/contracts/{contract_id}/renewal", headers=sales)
    assert renewed.status_code == 200, renewed.text
    wait_until("renewal restores writing", lambda: try_post(admin, channel_id, "after renewal"), 60)
    messages = {post["message"] for post in admin.posts.get_posts_for_channel(channel_id)["posts"].values()}
    assert {*written, "after renewal"} <= messages  # (probes taken before the plan arrived are there too)
