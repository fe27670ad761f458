"""Driving the pages in Debian's Chromium through Playwright (which never downloads a browser here)."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
READY_TIMEOUT_MS = 60_000


def sign_up_and_confirm(page: Page, base_url: str, slug: str, email: str, password: str) -> str:
    """Fill the signup form by its labels, open the mailed link; returns the workspace id.

    Ends on the progress page, signed in by the link.
    """
    page.goto(f"{base_url}/")
    expect(page).to_have_url(f"{base_url}/signup")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Workspace address").fill(slug)
    expect(page.locator("#workspace-status")).to_have_text(f"{slug}.localhost is available")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Create workspace").click()

    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    expect(page.locator("#sent-to")).to_have_text(email)

    page.goto(f"{base_url}/dev/mail?to={email}")
    page.locator("a[href*='/signup/verify?token=']").first.click()

    expect(page).to_have_url(re.compile(r"/signup/workspaces/[0-9a-f-]+/progress$"))
    return page.url.rsplit("/", 2)[-2]
