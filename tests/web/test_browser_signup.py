"""Acceptance: a person signs up in Chromium, confirms the mail, waits for the workspace and uses it."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from mattermostdriver import Driver
from playwright.sync_api import Browser, expect

from tests.web.browser import READY_TIMEOUT_MS, sign_up_and_confirm
from tests.web.conftest import Server

pytestmark = pytest.mark.browser


def test_signup_in_the_browser_to_a_working_workspace(server: Server, browser: Browser, tmp_path: Path) -> None:
    started = time.monotonic()
    slug = f"acme-{uuid.uuid4().hex[:6]}"
    email = f"owner@{slug}.example.com"
    password = "correct horse battery staple"
    page = browser.new_page()
    page.set_default_timeout(15_000)

    sign_up_and_confirm(page, server.url, slug, email, password)
    expect(page.get_by_role("heading", name="Setting up your workspace")).to_be_visible()
    expect(page.locator("[data-step]")).to_have_count(5)

    expect(page).to_have_url(re.compile(r"/ready$"), timeout=READY_TIMEOUT_MS)
    expect(page.get_by_role("heading", name="Your workspace is ready")).to_be_visible()
    workspace_url = page.locator("#workspace-url").get_attribute("href")
    assert workspace_url == f"http://localhost:{server.port}/w/{slug}"
    browser_url = page.locator("#workspace-browser-url").get_attribute("href")
    assert browser_url == f"http://{slug}.localhost:{server.port}"
    expect(page.locator("#workspace-login")).to_have_text(email)
    expect(page.locator("#trial-ends")).to_contain_text("Until")
    page.screenshot(path=str(tmp_path / "ready.png"), full_page=True)
    page.close()

    # The control plane's proxy answers for <slug>.localhost (browsers resolve it) ...
    ping = httpx.get(
        f"http://127.0.0.1:{server.port}/api/v4/system/ping",
        headers={"Host": f"{urlsplit(browser_url).netloc}"},
        timeout=10,
    )
    assert ping.status_code == 200, ping.text

    # ... and Mattermost clients work with the signup credentials at the workspace's address, which needs no
    # name resolved (requests cannot resolve *.localhost).
    driver = Driver(
        {
            "url": "localhost",
            "port": server.port,
            "scheme": "http",
            "basepath": f"/w/{slug}/api/v4",
            "login_id": email,
            "password": password,
            "timeout": 10,
        }
    )
    driver.login()
    try:
        teams = driver.teams.get_user_teams("me")
        assert len(teams) == 1
        channel = driver.channels.get_channel_by_name(teams[0]["id"], "town-square")
        message = f"hello from the signup test {uuid.uuid4().hex[:6]}"
        driver.posts.create_post({"channel_id": channel["id"], "message": message})
        posts = driver.posts.get_posts_for_channel(channel["id"])
        assert message in [post["message"] for post in posts["posts"].values()]
    finally:
        driver.logout()
    print(f"browser signup to first post took {time.monotonic() - started:.1f}s")
