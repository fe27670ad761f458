"""Acceptance (issue 11, "Must show"): a person signs up in Chromium, the 14-day trial runs out on the clock with no
card and the workspace becomes read-only (a Mattermost client can read and search, posting is refused with the
workspace server's error), then a card entered in Stripe.js's card element (localstripe's) on the billing page
makes the workspace active again and the client posts; at the month's end its invoice is on the page.

The control plane is a ``canopy run`` subprocess billing through localstripe, its billing tick every second, on a
clock file the test moves (dev mode).
"""

from __future__ import annotations

import re
import uuid
from calendar import monthrange
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import httpx
import pytest
from mattermostdriver import Driver
from mattermostdriver.exceptions import NotEnoughPermissions
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from control_plane.core.clock import CLOCK_FILE_VARIABLE, advance, utcnow
from tests.harness.localstripe import API_KEY, PUBLISHABLE_KEY, LocalStripe
from tests.waiting import wait_until
from tests.web.browser import READY_TIMEOUT_MS, sign_up_and_confirm
from tests.web.conftest import Server

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery staple"
PAST_THE_TRIAL = timedelta(days=15)


@dataclass
class BillingServer:
    """A control plane billing through localstripe, and the clock file of all its processes."""

    server: Server
    clock_file: Path
    stripe_origin: str

    def workspace(self, slug: str) -> tuple[str, bool]:
        """The workspace's lifecycle state, and whether its latest change is reconciled (its server told)."""
        ((state, generation, observed),) = self.server.query(
            "SELECT lifecycle_state, generation, observed_generation FROM workspaces WHERE slug = %s", slug
        )
        return str(state), observed is not None and observed >= generation

    def seat_snapshots(self, slug: str) -> int:
        """How many seat snapshots of the workspace billing holds."""
        ((count,),) = self.server.query(
            "SELECT count(*) FROM seat_snapshots s JOIN workspaces w ON w.id = s.workspace_id WHERE w.slug = %s", slug
        )
        return int(count)

    def invoice_states(self, slug: str) -> list[str]:
        """The states of the invoices of the workspace's organization."""
        rows = self.server.query(
            "SELECT i.state FROM invoices i JOIN workspaces w ON w.organization_id = i.organization_id "
            "WHERE w.slug = %s",
            slug,
        )
        return [str(state) for (state,) in rows]

    def wait_settled(self, slug: str, state: str) -> None:
        wait_until(
            lambda: f"{slug} {state} and reconciled (now {self.workspace(slug)})",
            lambda: self.workspace(slug) == (state, True),
            timeout=90,
        )


@pytest.fixture(scope="module")
def billing(
    server_factory: Callable[..., Server], localstripe: LocalStripe, tmp_path_factory: pytest.TempPathFactory
) -> BillingServer:
    clock_file = tmp_path_factory.mktemp("clock") / "offset"
    server = server_factory(
        "billing",
        CANOPY_SIGNUP_RATE_LIMIT="1000",
        CANOPY_CLOCK_FILE=str(clock_file),
        CANOPY_STRIPE_API_KEY=API_KEY,
        CANOPY_STRIPE_API_BASE=localstripe.endpoint,
        CANOPY_STRIPE_DIALECT="localstripe",
        CANOPY_STRIPE_PUBLISHABLE_KEY=PUBLISHABLE_KEY,
        CANOPY_STRIPE_JS_URL=f"{localstripe.endpoint}/js.stripe.com/v3/",
        CANOPY_BILLING_RUN_SECONDS="1",
    )
    return BillingServer(server, clock_file, localstripe.endpoint)


def mattermost(server: Server, slug: str, email: str) -> Driver:
    """``mattermostdriver`` logged in to the workspace at its address on the control plane (``/w/<slug>``)."""
    driver = Driver(
        {
            "url": "localhost",
            "port": server.port,
            "scheme": "http",
            "basepath": f"/w/{slug}/api/v4",
            "login_id": email,
            "password": PASSWORD,
            "timeout": 10,
        }
    )
    driver.login()
    return driver


def fill_card(page: Page, number: str) -> None:
    """Type a card into the card element (localstripe's Stripe.js: one input per field)."""
    element = page.locator("#card-element")
    for placeholder, value in (("number", number), ("exp_month", "12"), ("exp_year", "34"), ("cvc", "123")):
        element.get_by_placeholder(placeholder, exact=True).fill(value)
    element.get_by_placeholder("postal_code").fill("75001")


def test_a_trial_runs_out_and_a_card_on_the_billing_page_reactivates_the_workspace(
    billing: BillingServer, browser: Browser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CLOCK_FILE_VARIABLE, str(billing.clock_file))  # this process reads the server's clock too
    server = billing.server
    slug = f"pay-{uuid.uuid4().hex[:6]}"
    email = f"owner@{slug}.example.com"
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    console: list[str] = []
    page.on("console", lambda message: console.append(message_text(message)))

    sign_up_and_confirm(page, server.url, slug, email, PASSWORD)
    expect(page).to_have_url(re.compile(r"/ready$"), timeout=READY_TIMEOUT_MS)
    billing.wait_settled(slug, "trialing")
    page.goto(f"{server.url}/workspaces")
    billing_path = page.locator(f"#workspace-{slug}-billing").get_attribute("href")
    assert billing_path is not None and re.fullmatch(r"/billing/[0-9a-f-]{36}", billing_path)
    page.goto(f"{server.url}{billing_path}")
    expect(page.locator("#billing-status")).to_have_text("Free trial")
    expect(page.locator("#card-on-file")).to_have_text("No card on file")

    driver = mattermost(server, slug, email)
    team = driver.teams.get_user_teams("me")[0]
    channel = driver.channels.get_channel_by_name(team["id"], "town-square")
    driver.posts.create_post({"channel_id": channel["id"], "message": "minutes of the kickoff during the trial"})

    # Fifteen days later, no card: the billing tick ends the trial and the workspace becomes read-only.
    advance(billing.clock_file, PAST_THE_TRIAL)
    billing.wait_settled(slug, "suspended")
    with pytest.raises(NotEnoughPermissions, match="You do not have the appropriate permissions"):
        driver.posts.create_post({"channel_id": channel["id"], "message": "refused while suspended"})
    refused = httpx.post(
        f"{server.loopback}/w/{slug}/api/v4/posts",
        json={"channel_id": channel["id"], "message": "refused while suspended"},
        headers={"Authorization": f"Bearer {driver.client.token}"},
        timeout=10,
    )
    assert refused.status_code == 403
    assert refused.json()["id"] == "api.context.permissions.app_error"
    assert "suspended" in refused.json()["detailed_error"]
    posts = driver.posts.get_posts_for_channel(channel["id"])["posts"].values()
    assert "minutes of the kickoff during the trial" in [post["message"] for post in posts]
    found = driver.posts.search_for_team_posts(team["id"], {"terms": "kickoff", "is_or_search": False})
    assert [found["posts"][post_id]["message"] for post_id in found["order"]] == [
        "minutes of the kickoff during the trial"
    ]

    # The browser session ran out with the trial: the billing page asks to sign in, then shows the suspension.
    page.goto(f"{server.url}{billing_path}")
    expect(page).to_have_url(f"{server.url}/login?next={billing_path}")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{server.url}{billing_path}")
    expect(page.locator("#banner-suspended")).to_contain_text("read-only")
    expect(page.locator("#billing-status")).to_have_text("Suspended: unpaid")
    response = page.reload()
    assert response is not None
    policy = response.headers["content-security-policy"]
    assert f"script-src 'self' {billing.stripe_origin}" in policy and f"frame-src {billing.stripe_origin}" in policy

    # A card the issuer declines: Stripe.js says so and nothing changes.
    fill_card(page, "4000000000000002")
    page.get_by_role("button", name="Add card").click()
    expect(page.locator("#card-error")).to_have_text("Your card was declined.")
    expect(page.locator("#card-on-file")).to_have_text("No card on file")

    # A good card: on file at once, and the workers reactivate the workspace.
    fill_card(page, "4242424242424242")
    page.get_by_role("button", name="Add card").click()
    expect(page.locator("#card-on-file")).to_have_text("Visa ending in 4242")
    billing.wait_settled(slug, "active")
    page.reload()
    expect(page.locator("#billing-status")).to_have_text("Active")
    expect(page.locator("#banner-suspended")).to_have_count(0)
    page.screenshot(path=str(tmp_path / "billing-active.png"), full_page=True)

    driver.posts.create_post({"channel_id": channel["id"], "message": "back in business"})
    posts = driver.posts.get_posts_for_channel(channel["id"])["posts"].values()
    assert "back in business" in [post["message"] for post in posts]
    driver.logout()

    # The month's end: its invoice (one seat, from the day after the card) is charged and listed on the page.
    first_billed = utcnow().date() + timedelta(days=1)
    next_month = (first_billed.replace(day=28) + timedelta(days=4)).replace(day=1)
    wait_until("a seat snapshot of the workspace", lambda: billing.seat_snapshots(slug) > 0)
    advance(billing.clock_file, datetime.combine(next_month, time(1), tzinfo=UTC) - utcnow())
    wait_until("the month's invoice paid", lambda: billing.invoice_states(slug) == ["paid"], timeout=60)
    page.reload()
    days, days_in_month = (next_month - first_billed).days, monthrange(first_billed.year, first_billed.month)[1]
    cents = (2 * 1000 * days + days_in_month) // (2 * days_in_month)  # $10 x days / days in the month, half up
    invoice = page.locator(".invoice")
    expect(invoice.locator(".invoice-period")).to_have_text(f"{first_billed:%B %Y}")
    expect(invoice.locator(".invoice-amount")).to_have_text(f"${cents // 100}.{cents % 100:02d}")
    expect(invoice.locator(".invoice-state")).to_have_text("Paid")
    day_word = "day" if days == 1 else "days"
    expect(invoice.locator(".invoice-lines li")).to_have_text(
        f"1 seat x {days} {day_word} from {first_billed.isoformat()}: ${cents // 100}.{cents % 100:02d}"
    )
    assert not [line for line in console if "Content Security Policy" in line], console
    context.close()


def message_text(message: ConsoleMessage) -> str:
    return f"{message.type}: {message.text}"


def test_only_the_billing_page_allows_stripe_js_and_another_organizations_page_is_not_found(
    billing: BillingServer, browser: Browser
) -> None:
    server = billing.server
    owners = []
    for _ in range(2):
        slug = f"org-{uuid.uuid4().hex[:6]}"
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(15_000)
        sign_up_and_confirm(page, server.url, slug, f"owner@{slug}.example.com", PASSWORD)
        billing.wait_settled(slug, "trialing")
        expect(page).to_have_url(re.compile(r"/ready$"), timeout=READY_TIMEOUT_MS)  # the waiting page moves on itself
        workspaces = page.goto(f"{server.url}/workspaces")
        assert workspaces is not None
        assert billing.stripe_origin not in workspaces.headers["content-security-policy"]
        owners.append((page, page.locator(f"#workspace-{slug}-billing").get_attribute("href")))
    (mine, my_billing), (_, their_billing) = owners

    response = mine.goto(f"{server.url}{their_billing}")
    assert response is not None and response.status == 404
    expect(mine.get_by_role("heading", name="Page not found")).to_be_visible()
    assert billing.stripe_origin not in response.headers["content-security-policy"]
    for unknown in (uuid.uuid4(), "not-an-id"):
        assert mine.request.get(f"{server.url}/billing/{unknown}").status == 404

    # Cancel and resume through the page's forms (CSRF-protected POSTs).
    mine.goto(f"{server.url}{my_billing}")
    mine.get_by_role("button", name="Cancel subscription").click()
    expect(mine.locator("#cancel-at")).to_contain_text("Ends on")
    mine.get_by_role("button", name="Resume subscription").click()
    expect(mine.locator("#cancel-at")).to_have_count(0)
    expect(mine.get_by_role("button", name="Cancel subscription")).to_be_visible()

    # The card form's endpoints refuse a request without the page's token, and another organization's.
    for path, status in ((my_billing, 403), (their_billing, 404)):
        forged = mine.request.post(
            f"{server.url}{path}/card", data={"csrf_token": "1.forged", "payment_method_id": "pm_card_visa"}
        )
        assert forged.status == status, forged.text()
    assert mine.request.post(f"{server.url}{their_billing}/cancel", form={"csrf_token": "x"}).status == 404
