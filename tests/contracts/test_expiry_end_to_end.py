"""Expiry without renewal, end to end on a real Enterprise workspace server (``mattermostdriver``): the licence the
apps read names the contract's end, notices go out 60, 30 and 7 days ahead, the grace keeps writing, after it the
workspace is read-only (reading works), renewal restores writing and moves the end a year, every post is still there."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from mattermostdriver import Driver

from control_plane.core.authz import Role
from control_plane.core.clock import utcnow
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Tier
from tests.billed_plane import BilledPlane
from tests.contracts.conftest import contract_run, subjects_to
from tests.waiting import wait_until


def try_post(driver: Driver, channel_id: str, message: str) -> bool:
    """Whether the server took the post."""
    try:
        driver.posts.create_post({"channel_id": channel_id, "message": message})
    except Exception:  # mattermostdriver raises one class per refusal status
        return False
    return True


def client_licence(driver: Driver) -> dict[str, str]:
    """The licence the Mattermost apps read (``/api/v4/license/client``) as the logged-in user sees it."""
    answer = driver.client.make_request("get", "/license/client", params={"format": "old"}).json()
    assert isinstance(answer, dict)
    return answer


def millis(at: datetime) -> str:
    return str(int(at.timestamp() * 1000))


def test_expiry_notices_grace_read_only_and_renewal_keep_every_post(billed: BilledPlane) -> None:
    plane = billed.plane
    plane.start_worker()
    workspace_id = plane.create_workspace("ctexpiry", tier=Tier.enterprise)
    billed.settled(workspace_id, Lifecycle.active)
    org = plane.row(workspace_id).organization_id
    sales = plane.staff_headers(Role.sales)
    contact = "ap@ctexpiry.example"
    body = {
        "organization_id": str(org),
        "seats_purchased": 5,
        "annual_price_per_seat_cents": 10_000,
        "start_date": utcnow().date().isoformat(),
        "billing_contact_email": contact,
        "billing_contact_name": "AP",
    }
    contract = plane.api.post("/api/v1/contracts", json=body, headers=sales).json()
    contract_id = uuid.UUID(contract["id"])
    ends_at = datetime.fromisoformat(contract["end_date"]).replace(tzinfo=UTC)
    admin = billed.driver(workspace_id, "ctexpiry.admin@example.com")
    team_id = admin.teams.get_user_teams("me")[0]["id"]
    channel_id = admin.channels.get_channel_by_name(team_id, "town-square")["id"]
    written: list[str] = []

    def write(message: str) -> None:
        assert try_post(admin, channel_id, message), message
        written.append(message)

    def run_at(moment: datetime) -> None:
        billed.advance(moment - utcnow())
        contract_run(contract_id)

    # The contract's licence reaches the server: the apps' banners read its end (ExpiresAt) for admins.
    wait_until(
        "the server shows the Enterprise licence", lambda: client_licence(admin).get("SkuShortName") == "enterprise", 60
    )
    assert client_licence(admin)["ExpiresAt"] == millis(ends_at)
    write("at the start")
    expected: list[str] = []
    for days in (60, 30, 7):
        run_at(ends_at - timedelta(days=days) + timedelta(hours=1))
        expected.append(f"Your Canopy Enterprise licence ends in {days} days")
        assert [s for s in subjects_to(contact) if "licence" in s] == expected
        write(f"{days} days before the end")

    run_at(ends_at + timedelta(hours=1))  # the grace: still writable
    assert subjects_to(contact)[-1] == "Your Canopy Enterprise licence has expired: 10 days of grace"
    write("during the grace")

    run_at(ends_at + timedelta(days=10, hours=1))
    assert subjects_to(contact)[-1] == "Your Canopy Enterprise workspaces are read-only"
    wait_until("posts are refused once the licence is read-only", lambda: not try_post(admin, channel_id, "probe"), 60)
    messages = {post["message"] for post in admin.posts.get_posts_for_channel(channel_id)["posts"].values()}
    assert set(written) <= messages  # reading still works, nothing lost

    renewed = plane.api.post(f"/api/v1/contracts/{contract_id}/renewal", headers=sales)
    assert renewed.status_code == 200, renewed.text
    wait_until("renewal restores writing", lambda: try_post(admin, channel_id, "after renewal"), 60)
    assert client_licence(admin)["ExpiresAt"] == millis(ends_at.replace(year=ends_at.year + 1))
    messages = {post["message"] for post in admin.posts.get_posts_for_channel(channel_id)["posts"].values()}
    assert {*written, "after renewal"} <= messages  # (probes taken before the plan arrived are there too)
