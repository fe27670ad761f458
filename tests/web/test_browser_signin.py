"""Acceptance: after signing up in one browser, a person signs in from a fresh one and finds the workspace."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.web.browser import READY_TIMEOUT_MS, sign_up_and_confirm
from tests.web.conftest import Server

pytestmark = pytest.mark.browser


def test_sign_in_from_a_fresh_browser_reaches_the_ready_page(server: Server, browser: Browser, tmp_path: Path) -> None:
    slug = f"back-{uuid.uuid4().hex[:6]}"
    email = f"owner@{slug}.example.com"
    password = "correct horse battery staple"
    first = browser.new_context()
    page = first.new_page()
    page.set_default_timeout(15_000)
    workspace_id = sign_up_and_confirm(page, server.url, slug, email, password)
    first.close()

    fresh = browser.new_context()  # no cookies: as on another computer
    page = fresh.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{server.url}/workspaces")
    expect(page).to_have_url(f"{server.url}/login?next=/workspaces")
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()

    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("not my password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("wrong")
    expect(page.get_by_label("Email")).to_have_value(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()

    expect(page).to_have_url(f"{server.url}/workspaces")
    expect(page.get_by_role("heading", name="Your workspaces")).to_be_visible()
    expect(page.get_by_role("link", name="Your workspaces")).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    item = page.locator(f"#workspace-{slug}")
    expect(item.get_by_role("heading", name=slug)).to_be_visible()
    # Still being set up (progress page, which moves on by itself) or already ready: either way, on.
    item.get_by_role("link", name=re.compile(rf"^(Sign-in details for|Setup progress of) {slug}\.localhost$")).click()

    expect(page).to_have_url(f"{server.url}/signup/workspaces/{workspace_id}/ready", timeout=READY_TIMEOUT_MS)
    expect(page.get_by_role("heading", name="Your workspace is ready")).to_be_visible()
    expect(page.locator("#workspace-url")).to_have_attribute("href", f"http://localhost:{server.port}/w/{slug}")
    expect(page.locator("#workspace-login")).to_have_text(email)
    page.screenshot(path=str(tmp_path / "ready-after-sign-in.png"), full_page=True)

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{server.url}/login")
    page.goto(f"{server.url}/signup/workspaces/{workspace_id}/ready")
    expect(page).to_have_url(f"{server.url}/login?next=/signup/workspaces/{workspace_id}/ready")
    fresh.close()
