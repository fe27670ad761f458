"""The invitation page over HTTP against a running control plane: a billing member joins from the mailed link,
sees the organization's workspaces, and dead links all look alike; the link's token never reaches the log."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from tests.waiting import wait_until
from tests.web.conftest import Server
from tests.web.pages import PASSWORD, Page, new_client, path_of, session_cookie, sign_up_and_verify

INVITATION_LINK = re.compile(r"/invitations/invite_[A-Za-z0-9_-]{43}$")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def api_token(client: httpx.Client, email: str, organization_id: str | None = None) -> httpx.Response:
    body = {"email": email, "password": PASSWORD} | ({"organization_id": organization_id} if organization_id else {})
    return client.post("/api/v1/auth/token", json=body)


def invitation_link(client: httpx.Client, email: str) -> str:
    """The path of the invitation link in the newest mail to ``email``, read from the dev mailbox."""
    response = client.get("/dev/mail", params={"to": email})
    assert response.status_code == 200, response.text
    links = [link for link in Page(response.text).links if INVITATION_LINK.search(link)]
    assert links, response.text
    return path_of(links[0])


@pytest.fixture(scope="module")
def owner(server: Server) -> tuple[str, str, dict[str, str]]:
    """The slug, organization id and API token headers of an owner who signed up on the web."""
    slug = unique("inviting")
    email = f"{slug}@example.com"
    with new_client(server.loopback) as client:
        sign_up_and_verify(client, email, slug)
        r = api_token(client, email)
    assert r.status_code == 201, r.text
    return slug, r.json()["organization_id"], {"Authorization": f"Bearer {r.json()['token']}"}


def invite(server: Server, owner: tuple[str, str, dict[str, str]], email: str) -> str:
    """Invite ``email`` as a billing member through the API; the path of the mailed link."""
    _, organization_id, headers = owner
    with new_client(server.loopback) as client:
        r = client.post(
            f"/api/v1/organizations/{organization_id}/invitations",
            json={"email": email, "role": "billing"},
            headers=headers,
        )
        assert r.status_code == 201, r.text
        return invitation_link(client, email)


def test_a_billing_member_joins_from_the_link_and_sees_the_workspaces(
    server: Server, owner: tuple[str, str, dict[str, str]]
) -> None:
    slug, organization_id, _ = owner
    email = f"{unique('billing')}@example.com"
    link = invite(server, owner, email)
    with new_client(server.loopback) as browser:
        shown = browser.get(link)
        assert shown.status_code == 200
        assert "frame-ancestors 'none'" in shown.headers["content-security-policy"]
        assert shown.headers["cache-control"] == "no-store"
        page = Page(shown.text)
        assert page.said("invitation-organization") == slug
        assert page.said("invitation-role").startswith("Billing member")
        assert page.labels["password"] == "Choose a password"
        assert page.inputs["password"]["autocomplete"] == "new-password"
        data = {"password": PASSWORD, "csrf_token": page.value("csrf_token")}
        joined = browser.post(link, data=data)
        assert joined.status_code == 303 and joined.headers["location"] == "/workspaces"
        assert session_cookie(joined)
        listed = Page(browser.get("/workspaces").text)
        assert listed.said("signed-in-as") == email
        assert f"workspace-{slug}" in listed.text
        assert listed.said("nav-sign-out") == "Sign out"
        assert browser.get(link).status_code == 404  # used

        r = api_token(browser, email, organization_id)
        assert r.status_code == 201 and r.json()["role"] == "billing", r.text
    token = link.rsplit("/", 1)[1]
    wait_until("the access log line of the invitation", lambda: "/invitations/***" in server.log())
    assert token not in server.log()


def test_dead_links_all_look_alike(server: Server, owner: tuple[str, str, dict[str, str]]) -> None:
    _, organization_id, headers = owner
    used = invite(server, owner, f"{unique('used')}@example.com")
    revoked_email = f"{unique('revoked')}@example.com"
    revoked = invite(server, owner, revoked_email)
    with new_client(server.loopback) as client:
        csrf = Page(client.get(used).text).value("csrf_token")
        assert client.post(used, data={"password": PASSWORD, "csrf_token": csrf}).status_code == 303
        pending = client.get(f"/api/v1/organizations/{organization_id}/invitations", headers=headers).json()
        [revoked_id] = [i["id"] for i in pending if i["email"] == revoked_email]
        r = client.delete(f"/api/v1/organizations/{organization_id}/invitations/{revoked_id}", headers=headers)
        assert r.status_code == 204
    answers = []
    for link in (used, revoked, "/invitations/invite_" + "x" * 43, "/invitations/nothing"):
        with new_client(server.loopback) as stranger:
            response = stranger.get(link)
            answers.append((response.status_code, Page(response.text).said("main")))
            assert session_cookie(response) is None
    assert len(set(answers)) == 1, answers
    assert answers[0][0] == 404 and "does not work" in answers[0][1]
