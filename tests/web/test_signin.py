"""Sign-in, sign-out and the workspace list over HTTP against a running control plane."""

from __future__ import annotations

import hashlib
import itertools
import re
import uuid

import pytest

from tests.rate_windows import within_one_window
from tests.web.conftest import Server
from tests.web.pages import (
    PASSWORD,
    Page,
    new_client,
    post_login,
    post_signup,
    session_cookie,
    sign_up_and_verify,
)

LOGIN_EMAIL_LIMIT = 10
LOGIN_ADDRESS_LIMIT = 50
LOGIN_WINDOW_SECONDS = 900
_sources = itertools.count(2)


def source() -> str:
    """A loopback address no other test connects from (its own per-address rate-limit bucket)."""
    return f"127.0.0.{next(_sources)}"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def confirmed_account(server: Server, prefix: str) -> str:
    """The email of a new account whose email is confirmed in the database, not by its link.

    Signing in does not care about the workspace, so none is provisioned (that takes a server
    process per workspace); tests that need a provisioned one use :func:`sign_up_and_verify`.
    """
    slug = unique(prefix)
    email = f"{slug}@example.com"
    with new_client(server.loopback) as client:
        assert post_signup(client, email, slug).status_code == 303
    server.query("UPDATE accounts SET email_verified_at = now() WHERE email = %s RETURNING id", email)
    return email


@pytest.fixture(scope="module")
def redirect_account(server: Server) -> str:
    """One account for the redirect cases (fewer sign-ins than the per-email limit)."""
    return confirmed_account(server, "redirect")


def sessions_with(server: Server, secret: str) -> int:
    digest = hashlib.sha256(secret.encode()).hexdigest()
    return int(server.query("SELECT count(*) FROM web_sessions WHERE token_digest = %s", digest)[0][0])


def listed_slugs(html: str) -> list[str]:
    """Slugs of the workspace list, in page order."""
    return re.findall(r'<li class="workspace" id="workspace-([a-z0-9-]+)"', html)


def test_sign_in_form_is_labelled_and_the_header_offers_it(server: Server) -> None:
    with new_client(server.loopback) as client:
        response = client.get("/login")
        assert response.status_code == 200
        page = Page(response.text)
        assert page.labels == {"email": "Email", "password": "Password"}
        assert page.inputs["password"]["type"] == "password"
        assert page.inputs["csrf_token"]["type"] == "hidden"
        assert "next" not in page.inputs
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert page.said("nav-sign-in") == "Sign in"
        assert "nav-sign-out" not in page.text
        assert Page(client.get("/signup").text).said("nav-sign-in") == "Sign in"
        assert "next" not in Page(client.get("/login?next=//evil.example").text).inputs
        kept = Page(client.get("/login?next=/signup/workspaces/x/ready").text)
        assert kept.value("next") == "/signup/workspaces/x/ready"


def test_every_failure_gets_the_same_401(server: Server) -> None:
    verified = confirmed_account(server, "known")
    unverified = f"{unique('unverified')}@example.com"
    with new_client(server.loopback, source()) as client:
        assert post_signup(client, unverified, unverified.split("@")[0]).status_code == 303
        assert post_login(client, verified).status_code == 303  # the right credentials do work
        client.cookies.delete("canopy_session")
        attempts = {
            "wrong password": post_login(client, verified, "not the password at all"),
            "unverified": post_login(client, unverified, PASSWORD),
            "unknown email": post_login(client, f"nobody-{verified}", PASSWORD),
        }
    alerts = set()
    for what, response in attempts.items():
        assert response.status_code == 401, what
        assert session_cookie(response) is None, what
        page = Page(response.text)
        alerts.add(page.said("form-alert"))
        assert page.value("email").endswith("@example.com"), what  # kept
        assert page.value("password") == "", what
        assert PASSWORD not in response.text
    assert len(alerts) == 1, alerts
    assert "wrong" in alerts.pop()


def test_sign_in_without_a_valid_csrf_token_is_403(server: Server) -> None:
    email = confirmed_account(server, "csrf-login")
    with new_client(server.loopback, source()) as client:
        missing = post_login(client, email, token="")
        forged = post_login(client, email, token=f"1700000000.{'0' * 64}")
        assert missing.status_code == 403 and forged.status_code == 403
        for response in (missing, forged):
            assert session_cookie(response) is None
            assert "expired" in Page(response.text).said("form-alert")
            assert Page(response.text).value("email") == email


def test_sign_in_is_rate_limited_per_email_and_per_address(server: Server) -> None:
    email = confirmed_account(server, "limited")
    slug = email.split("@")[0]
    within_one_window(LOGIN_WINDOW_SECONDS, 30)
    with new_client(server.loopback, source()) as client:
        token = Page(client.get("/login").text).value("csrf_token")
        wrong = [
            post_login(client, email, "wrong password!", token=token).status_code for _ in range(LOGIN_EMAIL_LIMIT)
        ]
        limited = post_login(client, email, token=token)  # even the right password
    assert wrong == [401] * LOGIN_EMAIL_LIMIT
    assert limited.status_code == 429
    assert session_cookie(limited) is None
    assert 0 < int(limited.headers["retry-after"]) <= 900
    assert "Too many sign-in attempts" in Page(limited.text).said("form-alert")
    assert Page(limited.text).value("email") == email
    with new_client(server.loopback, source()) as elsewhere:  # the email is limited from any address
        assert post_login(elsewhere, email).status_code == 429

    within_one_window(LOGIN_WINDOW_SECONDS, 30)
    with new_client(server.loopback, source()) as client:
        token = Page(client.get("/login").text).value("csrf_token")
        statuses = [
            post_login(client, f"nobody-{n}-{slug}@example.com", token=token).status_code
            for n in range(LOGIN_ADDRESS_LIMIT)
        ]
        limited = post_login(client, f"someone-else-{slug}@example.com", token=token)
    assert statuses == [401] * LOGIN_ADDRESS_LIMIT
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    with new_client(server.loopback, source()) as other_address:
        assert post_login(other_address, f"someone-else-{slug}@example.com").status_code == 401


@pytest.mark.parametrize(
    "next_path",
    ["//evil.example", "https://evil.example", "/\\evil.example", "/\t/evil.example", "javascript:alert(1)", ""],
)
def test_sign_in_never_redirects_off_site(server: Server, redirect_account: str, next_path: str) -> None:
    with new_client(server.loopback, source()) as client:
        response = post_login(client, redirect_account, next_path=next_path)
        assert response.status_code == 303
        assert response.headers["location"] == "/workspaces"
        # Already signed in, the form passes through with the same rule.
        again = client.get("/login", params={"next": next_path})
        assert again.status_code == 303 and again.headers["location"] == "/workspaces"


def test_sign_in_goes_back_to_the_page_that_asked_for_it(server: Server) -> None:
    slug = unique("back")
    email = f"{slug}@example.com"
    with new_client(server.loopback, source()) as client:
        progress = sign_up_and_verify(client, email, slug)
        status = progress.replace("/progress", "/status")
        ready = progress.replace("/progress", "/ready")
        client.cookies.delete("canopy_session")
        assert client.get("/workspaces").headers["location"] == "/login?next=/workspaces"
        assert client.get(progress).headers["location"] == f"/login?next={progress}"
        assert client.get(ready).headers["location"] == f"/login?next={ready}"
        assert client.get(status).headers["location"] == f"/login?next={progress}"  # the page, not the JSON
        form = Page(client.get(f"/login?next={progress}").text)
        response = post_login(client, email, next_path=form.value("next"), token=form.value("csrf_token"))
        assert response.status_code == 303 and response.headers["location"] == progress
        assert client.get(progress).status_code in (200, 303)  # 303: already ready
        assert client.get(status).status_code == 200


def test_each_account_sees_only_its_own_workspaces_newest_first(server: Server) -> None:
    first, second = unique("mine"), unique("theirs")
    with new_client(server.loopback, source()) as setup:
        sign_up_and_verify(setup, f"{first}@example.com", first)
        sign_up_and_verify(setup, f"{second}@example.com", second)
    # A newer workspace in the first account's organization (still waiting, so nothing provisions it).
    newer = unique("newer")
    server.query(
        "INSERT INTO workspaces (id, organization_id, slug, display_name, tier, region, desired_release, "
        "lifecycle_state, conditions, outputs, generation, observed_generation, reconcile_attempts, "
        "created_at, updated_at) "
        "SELECT gen_random_uuid(), organization_id, %s, 'Newer one', tier, region, desired_release, "
        "'pending_verification', '[]', '{}', 1, 0, 0, now() + interval '1 minute', now() "
        "FROM workspaces WHERE slug = %s RETURNING id",
        newer,
        first,
    )

    with new_client(server.loopback, source()) as client:
        response = post_login(client, f"{first}@example.com")
        assert response.status_code == 303 and response.headers["location"] == "/workspaces"
        cookie = session_cookie(response)
        assert cookie is not None
        set_cookie = response.headers["set-cookie"]
        assert "HttpOnly" in set_cookie and "SameSite=lax" in set_cookie and "Max-Age=" in set_cookie
        listing = client.get("/workspaces")
    assert listing.status_code == 200
    page = Page(listing.text)
    assert listed_slugs(listing.text) == [newer, first]
    assert second not in listing.text
    assert page.said("signed-in-as") == f"{first}@example.com"
    assert page.said("nav-workspaces") == "Your workspaces"
    assert page.said("nav-sign-out") == "Sign out"
    assert "nav-sign-in" not in page.text
    assert page.said(f"workspace-{first}-address") == f"{first}.localhost"
    assert page.said(f"workspace-{newer}-name") == "Newer one"
    assert page.said(f"workspace-{newer}-state") == "Waiting for email confirmation"
    state = page.said(f"workspace-{first}-state")
    if state == "Being set up":
        assert any(link.endswith("/progress") for link in page.links)
    else:
        assert state == "Free trial"
        assert f"http://localhost:{server.port}/w/{first}" in page.links
        assert any(link.endswith("/ready") for link in page.links)
        assert page.said(f"workspace-{first}-trial").startswith("Until ")

    with new_client(server.loopback, source()) as client:
        assert post_login(client, f"{second}@example.com").status_code == 303
        listing = client.get("/workspaces")
    assert listed_slugs(listing.text) == [second]
    assert first not in listing.text and newer not in listing.text


def test_sign_in_rotates_the_session(server: Server) -> None:
    slug = unique("rotate")
    email = f"{slug}@example.com"
    with new_client(server.loopback, source()) as client:
        sign_up_and_verify(client, email, slug)
        before = client.cookies["canopy_session"]
        assert client.get("/workspaces").status_code == 200
        response = post_login(client, email)
        after = session_cookie(response)
        assert after is not None and after != before
        assert sessions_with(server, before) == 0  # the pre-login value is gone, not promoted
        assert client.get("/workspaces").status_code == 200
    with new_client(server.loopback) as replay:
        replay.cookies.set("canopy_session", before)
        assert replay.get("/workspaces").status_code == 303

    with new_client(server.loopback, source()) as planted:
        planted.cookies.set("canopy_session", "web_chosen-by-someone-else")
        response = post_login(planted, email)
        assert response.status_code == 303
        assert session_cookie(response) not in (None, "web_chosen-by-someone-else")


def test_sign_out_ends_the_session_on_the_server(server: Server) -> None:
    email = confirmed_account(server, "logout")
    with new_client(server.loopback, source()) as client:
        secret = session_cookie(post_login(client, email))
        assert secret is not None and sessions_with(server, secret) == 1
        token = Page(client.get("/workspaces").text).value("csrf_token")  # the header's sign-out form

        refused = client.post("/logout", data={"csrf_token": ""})
        assert refused.status_code == 403
        assert "nav-sign-out" in Page(refused.text).text  # still signed in, can try again
        assert client.get("/workspaces").status_code == 200

        response = client.post("/logout", data={"csrf_token": token})
        assert response.status_code == 303 and response.headers["location"] == "/login"
        cleared = response.headers["set-cookie"]
        assert cleared.startswith("canopy_session=") and "Max-Age=0" in cleared
        assert sessions_with(server, secret) == 0
        assert client.get("/workspaces").headers["location"] == "/login?next=/workspaces"
    with new_client(server.loopback) as replay:  # the old cookie value no longer works anywhere
        replay.cookies.set("canopy_session", secret)
        assert replay.get("/workspaces").status_code == 303
        assert Page(replay.get("/login").text).said("nav-sign-in") == "Sign in"
