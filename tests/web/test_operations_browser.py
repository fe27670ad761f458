"""Acceptance: an operator signs in with the ordinary form in Chromium, follows the header's Operations link, finds
a workspace pending deletion with its completed final backup, and purges it with a reason (the browser will not
send the form without one); the purge is audited with the reason and the workspace is torn down."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.waiting import wait_until
from tests.web.conftest import Server
from tests.web.operations import TIMEOUT, lifecycle, pending_deletion, staff_account
from tests.web.pages import PASSWORD

pytestmark = pytest.mark.browser


def test_an_operator_purges_with_a_reason(server: Server, browser: Browser, tmp_path: Path) -> None:
    slug = f"erase-{uuid.uuid4().hex[:6]}"
    address = f"{slug}.localhost"
    _, workspace_id = pending_deletion(server, slug)
    email = staff_account(server, "operator")

    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{server.url}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{server.url}/workspaces")
    page.get_by_role("link", name="Operations").click()
    expect(page).to_have_url(f"{server.url}/operations/data")

    item = page.locator(f"#pending-{slug}")
    expect(item.locator(".final-backup")).to_have_text("Final backup completed")
    purge = item.get_by_role("button", name=f"Purge {address} now")
    purge.click()  # no reason: the browser keeps the form
    assert item.get_by_label(f"Why purge {address} now?").evaluate("input => input.validity.valueMissing") is True
    expect(page).to_have_url(f"{server.url}/operations/data")
    assert lifecycle(server, workspace_id)[0] == "pending_deletion"

    reason = "legal request 2026-12-07"
    item.get_by_label(f"Why purge {address} now?").fill(reason)
    purge.click()
    expect(page).to_have_url(f"{server.url}/operations/data")
    expect(page.locator(f"#pending-{slug}").get_by_role("button", name=f"Purge {address} now")).to_have_count(0)
    page.screenshot(path=str(tmp_path / "operations-data.png"), full_page=True)
    [(actor, audited)] = server.query(
        "SELECT actor, after ->> 'reason' FROM audit_entries WHERE target_id = %s AND action = 'workspace.purge'",
        workspace_id,
    )
    assert "(operator)" in actor and audited == reason
    wait_until("the purge", lambda: lifecycle(server, workspace_id) == ("deleted", True), TIMEOUT)
    page.reload()
    expect(page.locator(f"#pending-{slug}")).to_have_count(0)
    context.close()
