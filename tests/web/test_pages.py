"""Signup pages over HTTP against a running control plane: CSRF, field errors, rate limit, sessions."""

from __future__ import annotations

import time
import uuid

import pytest
from fastapi.testclient import TestClient

from control_plane.core.settings import Settings, get_settings
from tests.web.conftest import Server
from tests.web.pages import Page, new_client, path_of, post_signup, sign_up_and_verify, verification_link

STEP_ORDER = ["DatabaseReady", "StorageReady", "ComputeReady", "DnsReady", "Available"]


def unique(prefix: str) -> str:
    """A fresh lowercase workspace address."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def accounts_named(server: Server, email: str) -> int:
    return int(server.query("SELECT count(*) FROM accounts WHERE email = %s", email)[0][0])


def test_root_redirects_to_a_labelled_signup_form(server: Server) -> None:
    with new_client(server.loopback) as client:
        response = client.get("/")
        assert response.status_code == 303
        assert response.headers["location"] == "/signup"
        response = client.get("/signup")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page = Page(response.text)
    assert page.labels == {"email": "Email", "workspace": "Workspace address", "password": "Password"}
    assert page.said("workspace-suffix") == ".localhost"
    assert page.inputs["csrf_token"]["type"] == "hidden"
    assert page.inputs["password"]["type"] == "password"
    cookie = response.headers["set-cookie"].lower()
    assert cookie.startswith("canopy_csrf=") and "httponly" in cookie and "samesite=lax" in cookie
    with new_client(server.loopback) as client:
        assert client.get("/static/canopy.css").headers["content-type"].startswith("text/css")
        assert client.get("/static/signup.js").status_code == 200
        assert client.get("/static/nothing.css").status_code == 404


def test_missing_or_wrong_csrf_token_is_refused_and_creates_nothing(server: Server) -> None:
    slug = unique("csrf")
    email = f"{slug}@example.com"
    with new_client(server.loopback) as client, new_client(server.loopback) as other:
        missing = post_signup(client, email, slug, token="")
        forged = post_signup(client, email, slug, token=f"{int(time.time())}.{'0' * 64}")
        expired = post_signup(client, email, slug, token=f"{int(time.time()) - 13 * 3600}.{'0' * 64}")
        others_token = Page(other.get("/signup").text).value("csrf_token")
        stolen = post_signup(client, email, slug, token=others_token)  # signed for another cookie
    with new_client(server.loopback) as cookieless:
        token = Page(cookieless.get("/signup").text).value("csrf_token")
        cookieless.cookies.clear()
        no_cookie = post_signup(cookieless, email, slug, token=token)
    for response in (missing, forged, expired, stolen, no_cookie):
        assert response.status_code == 403, response.text
        page = Page(response.text)
        assert "expired" in page.said("form-alert")
        assert page.value("email") == email  # input kept
        assert page.value("password") == ""
    assert accounts_named(server, email) == 0
    assert server.query("SELECT count(*) FROM workspaces WHERE slug = %s", slug)[0][0] == 0


def test_field_errors_appear_beside_their_fields_and_keep_the_input(server: Server) -> None:
    secret = "short-pw"
    with new_client(server.loopback) as client:
        response = post_signup(client, "not-an-email", "ab", password=secret)
    assert response.status_code == 422
    page = Page(response.text)
    assert "valid" in page.said("email-error").lower() or "like name@example.com" in page.said("email-error")
    assert "3 to 63 characters" in page.said("workspace-status")
    assert "at least 10 characters" in page.said("password-error")
    assert page.value("email") == "not-an-email"
    assert page.value("workspace") == "ab"
    assert page.value("password") == ""
    assert secret not in response.text
    assert page.inputs["email"]["aria-invalid"] == "true"
    assert "email-error" in page.inputs["email"]["aria-describedby"]


def test_a_taken_address_is_a_conflict_but_a_registered_email_is_not_told(server: Server) -> None:
    slug = unique("taken")
    email = f"{slug}@example.com"
    with new_client(server.loopback) as client:
        first = post_signup(client, email, slug.upper())
        assert first.status_code == 303
        assert first.headers["location"] == f"/signup/check-email?email={slug}%40example.com"
        sent = Page(client.get(first.headers["location"]).text)
        assert sent.said("sent-to") == email
        same_address = post_signup(client, f"other-{email}", slug)
        same_email = post_signup(client, email.upper(), unique("taken"))
    assert same_address.status_code == 409
    page = Page(same_address.text)
    assert page.said("workspace-status") == f"{slug}.localhost is already taken."
    assert page.value("email") == f"other-{email}"
    assert same_email.status_code == 303  # the same "check your email" as a new one (the holder gets a mail)
    assert same_email.headers["location"] == first.headers["location"]


def test_verification_opens_a_private_session_on_the_progress_page(server: Server) -> None:
    slug = unique("verify")
    email = f"{slug}@example.com"
    with new_client(server.loopback) as owner:
        assert post_signup(owner, email, slug).status_code == 303
        link = verification_link(owner, email)
        token = link.split("token=", 1)[1]
        response = owner.get(path_of(link))
        assert response.status_code == 303
        progress_url = response.headers["location"]
        assert progress_url.startswith("/signup/workspaces/") and progress_url.endswith("/progress")
        cookie = response.headers["set-cookie"]
        session_secret = cookie.split(";", 1)[0].split("=", 1)[1]
        assert cookie.startswith("canopy_session=")
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie

        page_response = owner.get(progress_url)
        assert page_response.status_code in (200, 303)
        status_url = progress_url.replace("/progress", "/status")
        status = owner.get(status_url)
        assert status.status_code == 200
        body = status.json()
        assert [step["type"] for step in body["steps"]] == STEP_ORDER
        assert body["state"] in ("provisioning", "trialing")
        if page_response.status_code == 200:
            page = Page(page_response.text)
            assert page.said("progress-summary")
            assert '<meta http-equiv="refresh"' in page_response.text  # works without JS

        again = owner.get(path_of(link))  # a second click in the signed-in browser still lands on the workspace
        assert again.status_code == 303 and again.headers["location"] == progress_url
        assert "set-cookie" not in again.headers

    ready_url = progress_url.replace("/progress", "/ready")
    with new_client(server.loopback) as stranger:  # no session: sign in first (says nothing about the workspace)
        for url in (progress_url, status_url, ready_url):
            assert stranger.get(url).status_code == 303
        stranger.cookies.set("canopy_session", "web_forged")
        assert stranger.get(progress_url).headers["location"] == f"/login?next={progress_url}"
        assert stranger.get("/signup/workspaces/not-a-uuid/progress").status_code == 303

    other_slug = unique("other")
    with new_client(server.loopback) as other:
        post_signup(other, f"{other_slug}@example.com", other_slug)
        other_progress = other.get(path_of(verification_link(other, f"{other_slug}@example.com")))
        assert other_progress.status_code == 303
        for url in (progress_url, status_url, ready_url):
            assert other.get(url).status_code == 404  # another organization's workspace does not exist
        assert other.get("/signup/workspaces/not-a-uuid/progress").status_code == 404

    time.sleep(0.5)  # the access log line is written after the response
    log = server.log()
    assert token not in log
    assert session_secret not in log
    assert "token=***" in log


def test_bad_verification_links_get_a_friendly_400(server: Server) -> None:
    with new_client(server.loopback) as client:
        for path in ("/signup/verify?token=verify_unknown-token-value", "/signup/verify"):
            response = client.get(path)
            assert response.status_code == 400
            assert "This link does not work" in response.text
            assert "set-cookie" not in response.headers


def test_dev_mailbox_shows_messages_with_clickable_links(server: Server) -> None:
    slug = unique("mail")
    email = f"{slug}@example.com"
    with new_client(server.loopback) as client:
        post_signup(client, email, slug)
        link = verification_link(client, email)
        assert link.startswith(f"{server.url}/signup/verify?token=")
        listing = client.get("/dev/mail")
        assert listing.status_code == 200 and email in listing.text
        mail_id = server.query("SELECT max(id) FROM mail_outbox WHERE to_address = %s", email)[0][0]
        one = client.get(f"/dev/mail/{mail_id}")
        assert one.status_code == 200 and f'href="{link}"' in one.text
        assert client.get("/dev/mail/999999999").status_code == 404


def test_signups_are_rate_limited_per_client_address(limited_server: Server) -> None:
    with new_client(limited_server.loopback) as client:
        statuses = [post_signup(client, "bad-email", unique("rl")).status_code for _ in range(3)]
        limited = post_signup(client, f"{unique('rl')}@example.com", unique("rl"))
    assert statuses == [422, 422, 422]
    assert limited.status_code == 429
    assert "Too many signups" in Page(limited.text).said("form-alert")
    assert int(limited.headers["retry-after"]) > 0
    assert Page(limited.text).value("email").endswith("@example.com")


def test_dev_mailbox_is_404_outside_dev_mode() -> None:
    from control_plane.app import create_app

    app = create_app(check_migrations=False)
    app.dependency_overrides[get_settings] = lambda: Settings(dev_mode=False)
    with TestClient(app) as client:
        assert client.get("/dev/mail").status_code == 404
        assert client.get("/dev/mail/1").status_code == 404
        assert "Page not found" in client.get("/dev/mail").text


@pytest.mark.parametrize("page", ["progress", "status", "ready"])
def test_unknown_workspace_pages_are_404_when_signed_in(server: Server, page: str) -> None:
    slug = unique("unknown")
    with new_client(server.loopback) as client:
        sign_up_and_verify(client, f"{slug}@example.com", slug)
        assert client.get(f"/signup/workspaces/00000000-0000-0000-0000-000000000000/{page}").status_code == 404
