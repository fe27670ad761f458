"""Acceptance: an operator signs in with the ordinary form in Chromium, follows the console's links, sees the new
release and the fleet counts, and watches the fleet table change without reloading when a workspace is pinned
through the API; opens the rollout, sees it paused through the API without reloading, then clicks Resume, Pause
and Abort (each with a reason) and sees the state; the workspace's owner gets the 404 page."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.web.conftest import Server
from tests.web.console import api, fleet_with_rollout
from tests.web.pages import PASSWORD

pytestmark = pytest.mark.browser
LIVE_TIMEOUT_MS = 15_000


def _sign_in(page: Page, server: Server, email: str) -> None:
    page.goto(f"{server.url}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{server.url}/workspaces")


def _mark(page: Page) -> None:
    """Leave a mark in the page's window: it survives live updates, not a reload."""
    page.evaluate("window.consoleMark = 'still here'")


def _unreloaded(page: Page) -> bool:
    return bool(page.evaluate("window.consoleMark === 'still here'"))


def _act(page: Page, action: str, label: str, state: str) -> None:
    page.get_by_label(f"Reason to {label.lower()}").fill(f"browser {action}")
    page.get_by_role("button", name=label, exact=True).click()
    expect(page.locator("#rollout-state")).to_have_text(state)


def test_an_operator_watches_and_steers_a_rollout(server: Server, browser: Browser, tmp_path: Path) -> None:
    fleet = fleet_with_rollout(server)
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(LIVE_TIMEOUT_MS)
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    _sign_in(page, server, fleet.operator_email)
    page.get_by_role("link", name="Operations").click()
    page.get_by_role("link", name="Releases").click()
    expect(page).to_have_url(f"{server.url}/operations/releases")

    expect(page.locator(f'#releases-body tr[data-version="{fleet.release}"]')).to_contain_text("candidate")
    expect(page.locator("#fleet-body")).to_contain_text("enterprise")
    pinned_row = page.locator("#fleet-body tr", has_text=fleet.release).filter(has_text="professional")
    expect(pinned_row).to_have_count(0)
    _mark(page)
    with api(server, fleet.operator_token) as operator:
        pinned = operator.put(
            f"/api/v1/workspaces/{fleet.professional_id}/release-pin",
            json={"version": fleet.release, "reason": "console test"},
        )
    assert pinned.status_code == 200, pinned.text
    expect(pinned_row).to_have_count(1)
    expect(page.locator("#live-status")).to_contain_text("Live")
    assert _unreloaded(page)
    page.screenshot(path=str(tmp_path / "console-releases.png"), full_page=True)

    page.get_by_role("link", name="Rollouts").click()
    page.get_by_role("link", name=fleet.release).click()
    expect(page).to_have_url(f"{server.url}/operations/rollouts/{fleet.rollout_id}")
    expect(page.locator("#rollout-state")).to_have_text("running")
    expect(page.locator("#waves-body")).to_contain_text("Canaries")
    expect(page.get_by_role("button", name="Resume")).to_be_hidden()
    _mark(page)
    with api(server, fleet.operator_token) as operator:
        paused = operator.post(f"/api/v1/rollouts/{fleet.rollout_id}/pause", json={"reason": "paused over the API"})
    assert paused.status_code == 200, paused.text
    expect(page.locator("#rollout-state")).to_have_text("paused")
    expect(page.locator("#rollout-reason")).to_have_text("paused over the API")
    expect(page.get_by_role("button", name="Pause", exact=True)).to_be_hidden()
    assert _unreloaded(page)

    _act(page, "resume", "Resume", "running")
    _act(page, "pause", "Pause", "paused")
    _act(page, "abort", "Abort", "aborted")
    expect(page.locator("#rollout-reason")).to_have_text("browser abort")
    expect(page.get_by_role("button", name="Resume")).to_be_hidden()
    expect(page.get_by_role("button", name="Roll back")).to_be_visible()
    page.screenshot(path=str(tmp_path / "console-rollout.png"), full_page=True)
    assert errors == []
    context.close()

    owner_context = browser.new_context()
    owner_page = owner_context.new_page()
    _sign_in(owner_page, server, fleet.owner_email)
    for path in ("/operations/releases", f"/operations/rollouts/{fleet.rollout_id}"):
        answer = owner_page.goto(f"{server.url}{path}")
        assert answer is not None and answer.status == 404
        expect(owner_page.get_by_role("heading", name="Page not found")).to_be_visible()
    owner_context.close()
