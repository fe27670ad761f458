"""Acceptance on the local runtime: a salesperson signs in with the ordinary form in Chromium, creates a customer,
its contract and its Enterprise workspace in the sales console, and watches the workspace provision step by step;
the owner opens the invitation from the mail, sets a password, and ``mattermostdriver`` logs in to the workspace
as that owner, a system admin; the salesperson's credentials do not open the workspace. A self-serve owner gets the
403 page from the console's creation form and the 404 page from the rest."""

from __future__ import annotations

import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from mattermostdriver import Driver
from playwright.sync_api import Browser, Page, expect

from tests.waiting import wait_until
from tests.web.browser import READY_TIMEOUT_MS
from tests.web.conftest import Server
from tests.web.console import staff
from tests.web.pages import PASSWORD, new_client, post_login, sign_up_and_verify
from tests.web.pages import Page as Html

pytestmark = pytest.mark.browser
OWNER_PASSWORD = "the owner's own passphrase"
HANDOVER_TIMEOUT = 60.0


def _sign_in(page: Page, server: Server, email: str) -> None:
    page.goto(f"{server.url}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{server.url}/workspaces")


def _create_customer(page: Page, name: str, owner: str, slug: str) -> None:
    page.get_by_role("link", name="Sales").click()
    page.get_by_role("link", name="New customer").click()
    fields = {
        "Organization name": name,
        "Owner's email": owner,
        "Seats purchased": "25",
        "Annual price per seat (USD)": "96.50",
        "Start date": date.today().isoformat(),
        "Payment terms (days)": "45",
        "Billing contact's name": "Accounts Payable",
        "Billing contact's email": f"ap@{slug}.example.com",
        "Address": slug,
    }
    for label, value in fields.items():
        page.get_by_label(label, exact=True).fill(value)
    page.get_by_role("button", name="Create customer").click()


def _login(server: Server, slug: str, email: str, password: str) -> httpx.Response:
    return httpx.post(
        f"{server.loopback}/w/{slug}/api/v4/users/login", json={"login_id": email, "password": password}, timeout=10
    )


def _owner_driver(server: Server, slug: str, email: str) -> Any:
    return Driver(
        {
            "url": "localhost",
            "port": server.port,
            "scheme": "http",
            "basepath": f"/w/{slug}/api/v4",
            "login_id": email,
            "password": OWNER_PASSWORD,
            "timeout": 10,
        }
    )


def test_sales_creates_an_enterprise_customer_whose_owner_takes_over(
    server: Server, browser: Browser, tmp_path: Path
) -> None:
    started = time.monotonic()
    sales_email, _ = staff(server, "sales")
    slug = f"ent-{uuid.uuid4().hex[:6]}"
    owner_email = f"owner@{slug}.example.com"
    page = browser.new_context().new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)

    _sign_in(page, server, sales_email)
    _create_customer(page, f"Acme {slug}", owner_email, slug)
    expect(page.locator("#customer-name")).to_have_text(f"Acme {slug}")
    expect(page.locator("#customer-owner")).to_contain_text("invited")
    expect(page.locator("#seats")).to_have_text("0 / 25")
    expect(page.locator("#invoices")).to_contain_text("2412.50")  # 25 seats at 96.50
    expect(page.locator("#progress [data-step]")).to_have_count(5)
    expect(page.locator("#steps-done")).to_have_text("5", timeout=READY_TIMEOUT_MS)  # live, without a reload
    expect(page.locator("#progress-summary")).to_contain_text("is ready")
    page.screenshot(path=str(tmp_path / "sales-customer.png"), full_page=True)
    provisioned = time.monotonic() - started
    assert _login(server, slug, sales_email, PASSWORD).status_code == 401

    owner = browser.new_context().new_page()
    owner.set_default_timeout(15_000)
    owner.goto(f"{server.url}/dev/mail?to={owner_email}")
    owner.locator("a[href*='/invitations/invite_']").first.click()
    owner.get_by_label("Choose a password").fill(OWNER_PASSWORD)
    owner.get_by_role("button", name="Create account and join").click()
    expect(owner).to_have_url(f"{server.url}/workspaces")
    expect(owner.locator("body")).to_contain_text(slug)

    wait_until(
        "the owner handed over to the workspace",
        lambda: _login(server, slug, owner_email, OWNER_PASSWORD).status_code == 200,
        HANDOVER_TIMEOUT,
    )
    driver = _owner_driver(server, slug, owner_email)
    driver.login()
    try:
        me = driver.users.get_user("me")
        assert "system_admin" in me["roles"].split(), me["roles"]
        assert me["email"] == owner_email
        emails = {user["email"] for user in driver.users.get_users(params={"per_page": 200})}
        assert sales_email not in emails, "the salesperson holds no account in the customer's workspace"
    finally:
        driver.logout()
    assert _login(server, slug, sales_email, PASSWORD).status_code == 401
    page.reload()
    expect(page.locator("#customer-owner")).to_contain_text("has set a password")
    assert not errors, errors
    print(f"sales console: provisioned in {provisioned:.1f}s, owner admin after {time.monotonic() - started:.1f}s")


def test_a_self_serve_owner_is_refused_by_the_console(server: Server) -> None:
    slug = f"self-{uuid.uuid4().hex[:6]}"
    with new_client(server.loopback) as client:
        sign_up_and_verify(client, f"owner@{slug}.example.com", slug)
        form = client.get("/sales/customers/new")
        assert form.status_code == 403 and "Only sales and admins" in form.text
        token = Html(client.get("/workspaces").text).value("csrf_token")
        posted = client.post("/sales/customers/new", data={"name": "Mine", "slug": f"{slug}-ent", "csrf_token": token})
        assert posted.status_code == 403 and "Only sales and admins" in posted.text
        assert client.get("/sales").status_code == 404
        [(organization_id,)] = server.query("SELECT organization_id FROM workspaces WHERE slug = %s", slug)
        assert client.get(f"/sales/customers/{organization_id}").status_code == 404
    [(count,)] = server.query("SELECT count(*) FROM workspaces WHERE slug = %s", f"{slug}-ent")
    assert count == 0
    support_email, _ = staff(server, "support")
    with new_client(server.loopback) as support:
        assert post_login(support, support_email).status_code == 303
        assert support.get("/sales").status_code == 404
        assert support.get("/sales/customers/new").status_code == 403
