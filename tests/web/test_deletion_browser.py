"""Acceptance: an owner deletes a workspace from the workspaces page (typing its address, told when it will be
purged), sees it scheduled with its purge date, and cancels the deletion: it comes back and serves again."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from control_plane.web.rendering import long_date
from tests.waiting import wait_until
from tests.web.browser import READY_TIMEOUT_MS, sign_up_and_confirm
from tests.web.conftest import Server

pytestmark = pytest.mark.browser


def _state(server: Server, workspace_id: str) -> tuple[str, bool]:
    """The workspace's lifecycle state, and whether the reconciler has acted on its latest change."""
    [(state, reconciled)] = server.query(
        "SELECT lifecycle_state::text, observed_generation >= generation FROM workspaces WHERE id = %s",
        uuid.UUID(workspace_id),
    )
    return state, reconciled


def _answers(server: Server, slug: str) -> bool:
    try:
        return httpx.get(f"{server.loopback}/w/{slug}/api/v4/system/ping", timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


def test_delete_then_cancel_from_the_workspaces_page(server: Server, browser: Browser, tmp_path: Path) -> None:
    slug = f"oops-{uuid.uuid4().hex[:6]}"
    address = f"{slug}.localhost"
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    workspace_id = sign_up_and_confirm(page, server.url, slug, f"owner@{slug}.example.com", "correct horse battery")
    expect(page).to_have_url(re.compile(r"/ready$"), timeout=READY_TIMEOUT_MS)
    wait_until("the workspace answers", lambda: _answers(server, slug), timeout=60)

    page.goto(f"{server.url}/workspaces")
    item = page.locator(f"#workspace-{slug}")
    item.get_by_text(f"Delete {address}").first.click()  # opens the confirmation
    purge_day = long_date(datetime.now(UTC) + timedelta(days=7))  # a trial's grace period
    expect(item.locator(f"#workspace-{slug}-delete-notice")).to_contain_text(purge_day)
    form_button = item.get_by_role("button", name=f"Delete {address}")

    # A form without its CSRF token is refused, and so is a mistyped address.
    refused = page.request.post(f"{server.url}/workspaces/{workspace_id}/delete", form={"confirm_address": address})
    assert refused.status == 403
    item.get_by_label(re.compile("to confirm")).fill(f"{slug}.example.com")
    form_button.click()
    expect(page.get_by_role("alert")).to_contain_text(f"Type {address}")
    assert _state(server, workspace_id)[0] == "trialing"

    page.locator(f"#workspace-{slug}").get_by_text(f"Delete {address}").first.click()
    page.locator(f"#workspace-{slug}").get_by_label(re.compile("to confirm")).fill(address)
    page.locator(f"#workspace-{slug}").get_by_role("button", name=f"Delete {address}").click()
    expect(page).to_have_url(f"{server.url}/workspaces")
    item = page.locator(f"#workspace-{slug}")
    expect(item.locator(f"#workspace-{slug}-state")).to_have_text("Scheduled for deletion")
    expect(item.locator(f"#workspace-{slug}-purge")).to_contain_text(purge_day)
    expect(item.get_by_text(f"Delete {address}")).to_have_count(0)
    wait_until("the server stops", lambda: _state(server, workspace_id) == ("pending_deletion", True), timeout=60)
    assert not _answers(server, slug)
    page.screenshot(path=str(tmp_path / "scheduled-for-deletion.png"), full_page=True)

    item.get_by_role("button", name=f"Cancel deletion of {address}").click()
    expect(page).to_have_url(f"{server.url}/workspaces")
    expect(page.locator(f"#workspace-{slug}-state")).to_have_text("Free trial")
    expect(page.locator(f"#workspace-{slug}-purge")).to_have_count(0)
    wait_until("the workspace serves again", lambda: _answers(server, slug), timeout=60)
    [(actions,)] = server.query(
        "SELECT array_agg(action ORDER BY id) FROM audit_entries WHERE target_id = %s", workspace_id
    )
    assert actions[-2:] == ["workspace.pending_deletion", "workspace.deletion_cancelled"]
    context.close()
