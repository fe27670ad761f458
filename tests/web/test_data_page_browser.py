"""Acceptance: an owner backs up and exports a workspace from its data page in Chromium; the backup appears
completed, the export's download link appears and serves the archive; another organization's data page is the 404
page."""

from __future__ import annotations

import re
import uuid
import zipfile
from io import BytesIO
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.web.browser import READY_TIMEOUT_MS, sign_up_and_confirm
from tests.web.conftest import Server

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery staple"
JOB_TIMEOUT_MS = 120_000


def _ready_workspace(page: Page, server: Server, slug: str) -> str:
    workspace_id = sign_up_and_confirm(page, server.url, slug, f"owner@{slug}.example.com", PASSWORD)
    expect(page).to_have_url(f"{server.url}/signup/workspaces/{workspace_id}/ready", timeout=READY_TIMEOUT_MS)
    return workspace_id


def test_back_up_now_and_export_now_from_the_data_page(server: Server, browser: Browser, tmp_path: Path) -> None:
    slug = f"data-{uuid.uuid4().hex[:6]}"
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    workspace_id = _ready_workspace(page, server, slug)

    page.goto(f"{server.url}/workspaces")
    page.get_by_role("link", name=f"Backups and exports of {slug}.localhost").click()
    expect(page).to_have_url(f"{server.url}/workspaces/{workspace_id}/data")
    expect(page.locator("#no-backups")).to_be_visible()

    page.get_by_role("button", name="Back up now").click()
    expect(page).to_have_url(f"{server.url}/workspaces/{workspace_id}/data")
    backups = page.locator("#backups > li")
    expect(backups).to_have_count(1)
    expect(backups.first).to_have_attribute("data-state", "completed", timeout=JOB_TIMEOUT_MS)
    expect(backups.first.locator(".backup-kind")).to_have_text("Manual")
    expect(backups.first.locator(".backup-size")).to_have_text(re.compile(r"^(\d+ kB|\d+\.\d MB)$"))

    page.get_by_role("button", name="Export now").click()
    link = page.locator("#exports a.download")
    expect(link).to_be_visible(timeout=JOB_TIMEOUT_MS)
    page.screenshot(path=str(tmp_path / "data-page.png"), full_page=True)
    href = link.get_attribute("href")
    assert href
    archive = httpx.get(href.replace(server.url, server.loopback), timeout=60)
    assert archive.status_code == 200, archive.text[:300]
    assert any(name.endswith(".jsonl") for name in zipfile.ZipFile(BytesIO(archive.content)).namelist())

    other = browser.new_context()  # someone of another organization
    stranger = other.new_page()
    stranger.set_default_timeout(15_000)
    sign_up_and_confirm(stranger, server.url, f"else-{uuid.uuid4().hex[:6]}", f"x@else-{slug}.example.com", PASSWORD)
    response = stranger.goto(f"{server.url}/workspaces/{workspace_id}/data")
    assert response is not None and response.status == 404
    expect(stranger.get_by_role("heading", name="Page not found")).to_be_visible()
    other.close()
    context.close()
