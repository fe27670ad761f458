"""A workspace that billing hibernated (its trial ended without a card, then 30 days suspended) wakes on a request
into the state it was hibernated from, suspended: a ``mattermostdriver`` login at its path address succeeds on the
first try, reading works, posting is refused (read-only), from the first request on."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from mattermostdriver import Driver
from mattermostdriver.exceptions import NotEnoughPermissions

from control_plane.core.clock import utcnow
from control_plane.core.db import session_scope
from control_plane.subscriptions.models import Subscription
from control_plane.workspaces.lifecycle import Lifecycle
from tests.hibernation.conftest import Api, start_api
from tests.invoicing.conftest import BilledPlane, billed  # noqa: F401  (the billed plane fixture)
from tests.reconciler.conftest import PASSWORD, server_pids

pytestmark = pytest.mark.slow

SLUG = "billsleep"
OWNER = f"{SLUG}.admin@example.com"


@pytest.fixture
def api(billed: BilledPlane) -> Iterator[Api]:  # noqa: F811
    """The plane's ``canopy api`` (its proxy serves the path address); the workers stop with the test."""
    process = start_api(billed.plane)
    try:
        yield process
    finally:
        process.stop()
        billed.plane.stop_workers()


def until_trial_end(organization_id: uuid.UUID) -> timedelta:
    with session_scope() as session:
        sub = session.get(Subscription, organization_id)
        assert sub is not None and sub.trial_ends_at is not None
        return sub.trial_ends_at - utcnow()


def test_a_workspace_hibernated_by_billing_wakes_read_only(billed: BilledPlane, api: Api) -> None:  # noqa: F811
    workspace_id, org = billed.professional_workspace(SLUG)
    driver = billed.driver(workspace_id, OWNER)
    channel = driver.channels.get_channel_by_name_and_team_name(SLUG, "town-square")
    driver.posts.create_post({"channel_id": channel["id"], "message": "written before the sleep"})

    # The trial ends without a card (suspended), and 30 days later billing hibernates it.
    billed.advance(until_trial_end(org) + timedelta(minutes=1))
    billed.bill(org)
    billed.settled(workspace_id, Lifecycle.suspended)
    billed.advance(timedelta(days=30, minutes=1))
    billed.bill(org)
    billed.settled(workspace_id, Lifecycle.hibernated)
    assert billed.plane.row(workspace_id).resume_state == Lifecycle.suspended
    assert server_pids(billed.plane.runtime_dir(workspace_id)) == []

    # A login at the path address wakes it, on the first try, suspended.
    woken = Driver(
        {
            "url": "127.0.0.1",
            "port": api.port,
            "scheme": "http",
            "basepath": f"/w/{SLUG}/api/v4",
            "login_id": OWNER,
            "password": PASSWORD,
            "timeout": 60,
        }
    )
    woken.login()
    ws = billed.plane.row(workspace_id)
    assert (ws.lifecycle_state, ws.resume_state) == (Lifecycle.suspended, None)
    messages = [p["message"] for p in woken.posts.get_posts_for_channel(channel["id"])["posts"].values()]
    assert "written before the sleep" in messages
    with pytest.raises(NotEnoughPermissions):
        woken.posts.create_post({"channel_id": channel["id"], "message": "refused: read-only"})
    with billed.plane.admin() as conn:
        wakes = conn.execute(
            "SELECT actor, after->>'lifecycle_state' FROM audit_entries WHERE target_id = %s AND action = %s",
            [str(workspace_id), "workspace.wake"],
        ).fetchall()
    assert wakes == [("request", "suspended")]
