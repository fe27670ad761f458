"""Organization invitations and members: an owner invites a billing member, who joins through the link's page
and gets a billing token; other organizations' things are 404; links work once, for 7 days; the last owner stays."""

from __future__ import annotations

import itertools
import json
import re
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from control_plane.core import clock
from control_plane.core.db import session_scope
from control_plane.mail import service as mail
from tests.control_plane.conftest import PASSWORD, Owner
from tests.rate_windows import within_one_window
from tests.web.pages import Page, session_cookie

PROBLEM = "application/problem+json"
LINK = re.compile(r"(http://localhost:8000/invitations/(invite_[A-Za-z0-9_-]{43}))\s")
TOKEN_GUESS_LIMIT = 50
TOKEN_GUESS_WINDOW_SECONDS = 900
_addresses = itertools.count(1)


def browser(client: TestClient) -> TestClient:
    """A browser of its own (cookie jar, client address) that does not follow redirects."""
    return TestClient(client.app, follow_redirects=False, client=(f"10.11.0.{next(_addresses)}", 40000))


def unique_email(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}@example.com"


def invite(client: TestClient, owner: Owner, email: str, role: str = "billing", **headers: str) -> httpx.Response:
    """``owner`` (or whoever holds ``headers``) invites ``email`` into the owner's organization."""
    response: httpx.Response = client.post(
        f"/api/v1/organizations/{owner.organization_id}/invitations",
        json={"email": email, "role": role},
        headers=owner.headers | headers,
    )
    return response


def mails_to(email: str) -> list[tuple[str, str]]:
    """Subject and body of the mails to ``email``, newest first."""
    with session_scope() as session:
        return [(m.subject, m.body) for m in mail.recent(session, limit=20, to=email)]


def invitation_token(email: str) -> str:
    """The token of the newest invitation mailed to ``email``."""
    body = mails_to(email)[0][1]
    match = LINK.search(body)
    assert match, body
    return match.group(2)


def accept_with_password(client: TestClient, token: str, password: str = PASSWORD) -> httpx.Response:
    """Post the link's password form from a new browser (its form token taken from the sign-in page)."""
    page = browser(client)
    csrf = Page(page.get("/login").text).value("csrf_token")
    response: httpx.Response = page.post(f"/invitations/{token}", data={"password": password, "csrf_token": csrf})
    return response


def token_headers(client: TestClient, email: str, organization_id: str | None = None) -> dict[str, str]:
    body = {"email": email, "password": PASSWORD} | ({"organization_id": organization_id} if organization_id else {})
    r = client.post("/api/v1/auth/token", json=body)
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


@dataclass
class Member:
    email: str
    headers: dict[str, str]


def join(client: TestClient, owner: Owner, role: str = "billing") -> Member:
    """Invite a new email as ``role``, accept with a password, and sign in through the API."""
    email = unique_email(role)
    assert invite(client, owner, email, role).status_code == 201
    assert accept_with_password(client, invitation_token(email)).status_code == 303
    return Member(email, token_headers(client, email, owner.organization_id))


def members(client: TestClient, organization_id: str, headers: dict[str, str]) -> dict[str, str]:
    """Email -> role of the organization's members."""
    r = client.get(f"/api/v1/organizations/{organization_id}/members", headers=headers)
    assert r.status_code == 200, r.text
    return {m["email"]: m["role"] for m in r.json()}


def audit_entries(client: TestClient, headers: dict[str, str]) -> list[dict[str, object]]:
    """The audit entries the holder of ``headers`` may read, newest first."""
    r = client.get("/api/v1/audit", headers=headers, params={"limit": 500})
    assert r.status_code == 200, r.text
    entries: list[dict[str, object]] = r.json()["items"]
    return entries


def assert_problem(response: httpx.Response, status: int, slug: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    if slug is not None:
        assert response.json()["type"].endswith(f"/{slug}"), response.json()


def test_an_owner_invites_a_billing_member_who_joins_with_a_password(
    client: TestClient, sign_up: Callable[[str], Owner]
) -> None:
    owner = sign_up("inv-billing")
    email = unique_email("Billing").upper()
    r = invite(client, owner, email)
    assert r.status_code == 201, r.text
    created = r.json()
    assert set(created) == {"id", "email", "role", "expires_at", "created_at"}
    assert (created["email"], created["role"]) == (email.lower(), "billing")
    [(subject, body)] = mails_to(email.lower())
    assert "invited" in subject and "as a billing member" in body and "inv-billing" in body
    token = invitation_token(email.lower())
    listed = client.get(f"/api/v1/organizations/{owner.organization_id}/invitations", headers=owner.headers).json()
    assert listed == [created]

    page = browser(client)
    shown = page.get(f"/invitations/{token}")
    assert shown.status_code == 200
    view = Page(shown.text)
    assert view.said("invitation-organization") == "inv-billing"
    assert view.said("invitation-role").startswith("Billing member")
    assert view.said("invitation-email") == email.lower()
    assert view.inputs["password"]["type"] == "password" and view.labels["password"] == "Choose a password"
    accepted = page.post(f"/invitations/{token}", data={"password": PASSWORD, "csrf_token": view.value("csrf_token")})
    assert accepted.status_code == 303 and accepted.headers["location"] == "/workspaces"
    assert session_cookie(accepted)
    workspaces = page.get("/workspaces")
    assert Page(workspaces.text).said("signed-in-as") == email.lower()
    assert 'id="workspace-inv-billing"' in workspaces.text  # the organization's workspace, listed for billing

    r = client.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD})  # one organization
    assert r.status_code == 201 and (r.json()["role"], r.json()["organization_id"]) == (
        "billing",
        owner.organization_id,
    )
    assert members(client, owner.organization_id, owner.headers) == {owner.email: "owner", email.lower(): "billing"}
    assert client.get(f"/api/v1/organizations/{owner.organization_id}/invitations", headers=owner.headers).json() == []
    actions = [(e["action"], e["target_id"]) for e in audit_entries(client, owner.headers)]
    assert ("invitation.create", created["id"]) in actions and ("invitation.accept", created["id"]) in actions
    assert token not in json.dumps(audit_entries(client, owner.headers))

    # The link worked once: opening or posting it again changes nothing.
    again = browser(client)
    assert again.get(f"/invitations/{token}").status_code == 404
    reused = again.post(f"/invitations/{token}", data={"password": PASSWORD, "csrf_token": view.value("csrf_token")})
    assert reused.status_code == 404 and session_cookie(reused) is None
    assert members(client, owner.organization_id, owner.headers) == {owner.email: "owner", email.lower(): "billing"}


def test_a_billing_member_reads_members_but_cannot_manage_them(
    client: TestClient, sign_up: Callable[[str], Owner]
) -> None:
    owner = sign_up("inv-readonly")
    member = join(client, owner)
    base = f"/api/v1/organizations/{owner.organization_id}"
    r = client.get(f"{base}/members", headers=member.headers)
    assert r.status_code == 200 and {m["role"] for m in r.json()} == {"owner", "billing"}
    assert client.get(f"{base}/invitations", headers=member.headers).status_code == 200
    owner_id = next(m["account_id"] for m in r.json() if m["role"] == "owner")
    assert_problem(invite(client, owner, unique_email("nope"), **member.headers), 403, "forbidden")
    assert_problem(client.delete(f"{base}/members/{owner_id}", headers=member.headers), 403, "forbidden")
    pending = invite(client, owner, unique_email("pending")).json()
    assert_problem(client.delete(f"{base}/invitations/{pending['id']}", headers=member.headers), 403)


def test_another_organizations_members_and_invitations_are_404(
    client: TestClient, sign_up: Callable[[str], Owner]
) -> None:
    mine, theirs = sign_up("inv-mine"), sign_up("inv-theirs")
    their_invitation = invite(client, theirs, unique_email("theirs")).json()
    their_owner_id = client.get(
        f"/api/v1/organizations/{theirs.organization_id}/members", headers=theirs.headers
    ).json()[0]["account_id"]
    for org in (theirs.organization_id, str(uuid.uuid4())):
        base = f"/api/v1/organizations/{org}"
        assert_problem(client.get(f"{base}/members", headers=mine.headers), 404, "not-found")
        assert_problem(client.get(f"{base}/invitations", headers=mine.headers), 404)
        body = {"email": unique_email("x"), "role": "billing"}
        assert_problem(client.post(f"{base}/invitations", json=body, headers=mine.headers), 404)
        assert_problem(client.delete(f"{base}/invitations/{their_invitation['id']}", headers=mine.headers), 404)
        assert_problem(client.delete(f"{base}/members/{their_owner_id}", headers=mine.headers), 404)
    # Their ids under my organization are unknown too.
    base = f"/api/v1/organizations/{mine.organization_id}"
    assert_problem(client.delete(f"{base}/invitations/{their_invitation['id']}", headers=mine.headers), 404)
    assert_problem(client.delete(f"{base}/members/{their_owner_id}", headers=mine.headers), 404)
    assert members(client, theirs.organization_id, theirs.headers) == {theirs.email: "owner"}
    pending = client.get(f"/api/v1/organizations/{theirs.organization_id}/invitations", headers=theirs.headers)
    assert [i["id"] for i in pending.json()] == [their_invitation["id"]]


def test_an_expired_link_is_refused(
    client: TestClient, sign_up: Callable[[str], Owner], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    owner = sign_up("inv-expired")
    email = unique_email("late")
    assert invite(client, owner, email).status_code == 201
    token = invitation_token(email)
    clock_file = tmp_path / "clock"
    monkeypatch.setenv(clock.CLOCK_FILE_VARIABLE, str(clock_file))
    clock.advance(clock_file, timedelta(days=6, hours=23))
    assert browser(client).get(f"/invitations/{token}").status_code == 200  # still valid on the seventh day
    clock.advance(clock_file, timedelta(hours=1, seconds=1))
    page = browser(client)
    refused = page.get(f"/invitations/{token}")
    assert refused.status_code == 404 and "does not work" in refused.text
    assert accept_with_password(client, token).status_code == 404
    assert client.get(f"/api/v1/organizations/{owner.organization_id}/invitations", headers=owner.headers).json() == []
    assert members(client, owner.organization_id, owner.headers) == {owner.email: "owner"}


def test_inviting_again_replaces_the_open_invitation_and_revoking_stops_the_link(
    client: TestClient, sign_up: Callable[[str], Owner]
) -> None:
    owner = sign_up("inv-again")
    base = f"/api/v1/organizations/{owner.organization_id}"
    email = unique_email("twice")
    first = invite(client, owner, email, "billing").json()
    first_token = invitation_token(email)
    second = invite(client, owner, email, "owner").json()
    second_token = invitation_token(email)
    assert first["id"] != second["id"] and first_token != second_token
    assert [i["id"] for i in client.get(f"{base}/invitations", headers=owner.headers).json()] == [second["id"]]
    assert browser(client).get(f"/invitations/{first_token}").status_code == 404

    assert client.delete(f"{base}/invitations/{second['id']}", headers=owner.headers).status_code == 204
    assert client.delete(f"{base}/invitations/{second['id']}", headers=owner.headers).status_code == 204  # harmless
    assert browser(client).get(f"/invitations/{second_token}").status_code == 404
    assert accept_with_password(client, second_token).status_code == 404
    assert client.get(f"{base}/invitations", headers=owner.headers).json() == []
    revokes = [e for e in audit_entries(client, owner.headers) if e["action"] == "invitation.revoke"]
    assert [(e["target_id"], e["after"]) for e in revokes] == [
        (second["id"], {"replaced": False}),
        (first["id"], {"replaced": True}),
    ]
    assert members(client, owner.organization_id, owner.headers) == {owner.email: "owner"}


def test_members_cannot_be_invited_and_accepted_invitations_cannot_be_revoked(
    client: TestClient, sign_up: Callable[[str], Owner]
) -> None:
    owner = sign_up("inv-member")
    assert_problem(invite(client, owner, owner.email.upper(), "owner"), 409, "already-member")
    email = unique_email("joined")
    invitation = invite(client, owner, email).json()
    assert accept_with_password(client, invitation_token(email)).status_code == 303
    assert_problem(invite(client, owner, email), 409, "already-member")
    r = client.delete(
        f"/api/v1/organizations/{owner.organization_id}/invitations/{invitation['id']}", headers=owner.headers
    )
    assert_problem(r, 409, "invitation-accepted")


def test_the_last_owner_stays_and_a_removed_member_loses_access(
    client: TestClient, sign_up: Callable[[str], Owner]
) -> None:
    owner = sign_up("inv-owners")
    base = f"/api/v1/organizations/{owner.organization_id}"
    listed = client.get(f"{base}/members", headers=owner.headers).json()
    [first_owner_id] = [m["account_id"] for m in listed]
    assert_problem(client.delete(f"{base}/members/{first_owner_id}", headers=owner.headers), 409, "last-owner")

    billing = join(client, owner, "billing")
    second_owner = join(client, owner, "owner")
    ids = {m["email"]: m["account_id"] for m in client.get(f"{base}/members", headers=owner.headers).json()}
    assert client.delete(f"{base}/members/{ids[billing.email]}", headers=owner.headers).status_code == 204
    assert_problem(client.get(f"{base}/members", headers=billing.headers), 401)  # its token was revoked
    assert_problem(client.delete(f"{base}/members/{ids[billing.email]}", headers=owner.headers), 404)

    # With two owners, one may go; then the other is the last.
    assert client.delete(f"{base}/members/{first_owner_id}", headers=second_owner.headers).status_code == 204
    assert_problem(client.get(f"{base}/members", headers=owner.headers), 401)
    r = client.delete(f"{base}/members/{ids[second_owner.email]}", headers=second_owner.headers)
    assert_problem(r, 409, "last-owner")
    assert members(client, owner.organization_id, second_owner.headers) == {second_owner.email: "owner"}
    removed = [e for e in audit_entries(client, second_owner.headers) if e["action"] == "member.remove"]
    assert [e["before"] for e in removed] == [
        {"email": owner.email, "role": "owner"},
        {"email": billing.email, "role": "billing"},
    ]


def test_an_existing_account_signs_in_to_accept(client: TestClient, sign_up: Callable[[str], Owner]) -> None:
    owner, other = sign_up("inv-host"), sign_up("inv-guest")
    assert invite(client, owner, other.email).status_code == 201
    token = invitation_token(other.email)
    path = f"/invitations/{token}"

    page = browser(client)
    view = Page(page.get(path).text)
    assert "password" not in view.inputs
    assert f"/login?next={path}" in view.links and "Sign in" in view.said("sign-in-first")
    csrf = Page(page.get("/login").text).value("csrf_token")
    refused = page.post(path, data={"csrf_token": csrf})  # not signed in: nothing happens
    assert refused.status_code == 403 and "Sign in as" in Page(refused.text).said("form-alert")

    # Signed in as somebody else: still refused.
    elsewhere = browser(client)
    login = Page(elsewhere.get("/login").text).value("csrf_token")
    form = {"email": owner.email, "password": PASSWORD, "csrf_token": login, "next": path}
    assert elsewhere.post("/login", data=form).headers["location"] == path
    shown = Page(elsewhere.get(path).text)
    assert f"signed in as {owner.email}" in shown.said("sign-in-first")
    assert elsewhere.post(path, data={"csrf_token": login}).status_code == 403
    assert members(client, owner.organization_id, owner.headers) == {owner.email: "owner"}

    # Signed in as the invited email: the page accepts.
    login = Page(page.get(f"/login?next={path}").text).value("csrf_token")
    form = {"email": other.email, "password": PASSWORD, "csrf_token": login, "next": path}
    assert page.post("/login", data=form).headers["location"] == path
    view = Page(page.get(path).text)
    assert view.said("accept") == "Join inv-host"
    assert page.post(path, data={"csrf_token": "1700000000." + "0" * 64}).status_code == 403  # CSRF checked
    accepted = page.post(path, data={"csrf_token": view.value("csrf_token")})
    assert accepted.status_code == 303 and accepted.headers["location"] == "/workspaces"
    listed = page.get("/workspaces").text
    assert 'id="workspace-inv-host"' in listed and 'id="workspace-inv-guest"' in listed
    assert members(client, owner.organization_id, owner.headers) == {owner.email: "owner", other.email: "billing"}
    r = client.post(
        "/api/v1/auth/token",
        json={"email": other.email, "password": PASSWORD, "organization_id": owner.organization_id},
    )
    assert r.status_code == 201 and r.json()["role"] == "billing"


def test_a_new_account_needs_a_real_password_and_the_form_token(
    client: TestClient, sign_up: Callable[[str], Owner]
) -> None:
    owner = sign_up("inv-password")
    email = unique_email("pw")
    assert invite(client, owner, email).status_code == 201
    token = invitation_token(email)
    page = browser(client)
    csrf = Page(page.get(f"/invitations/{token}").text).value("csrf_token")
    short = page.post(f"/invitations/{token}", data={"password": "short", "csrf_token": csrf})
    assert short.status_code == 422 and "10 to 200 characters" in Page(short.text).said("password-error")
    forged = page.post(f"/invitations/{token}", data={"password": PASSWORD, "csrf_token": f"1.{'0' * 64}"})
    assert forged.status_code == 403 and session_cookie(forged) is None
    assert members(client, owner.organization_id, owner.headers) == {owner.email: "owner"}
    assert page.post(f"/invitations/{token}", data={"password": PASSWORD, "csrf_token": csrf}).status_code == 303


PARALLEL = 6


def in_parallel(send: Callable[[int], httpx.Response]) -> list[httpx.Response]:
    """``send(0..PARALLEL-1)`` released at once."""
    barrier = threading.Barrier(PARALLEL)

    def go(n: int) -> httpx.Response:
        barrier.wait(timeout=30)
        return send(n)

    with ThreadPoolExecutor(PARALLEL) as pool:
        return list(pool.map(go, range(PARALLEL)))


def test_parallel_invitations_and_acceptances_leave_one_of_each(
    client: TestClient, sign_up: Callable[[str], Owner]
) -> None:
    owner = sign_up("inv-race")
    email = unique_email("race")
    invited = in_parallel(lambda _: invite(client, owner, email))
    assert [r.status_code for r in invited] == [201] * PARALLEL, [r.text for r in invited]
    pending = client.get(f"/api/v1/organizations/{owner.organization_id}/invitations", headers=owner.headers).json()
    assert len(pending) == 1
    token = invitation_token(email)  # the newest mail is the open invitation's

    browsers = [browser(client) for _ in range(PARALLEL)]
    tokens = [Page(b.get("/login").text).value("csrf_token") for b in browsers]
    accepted = in_parallel(
        lambda n: browsers[n].post(f"/invitations/{token}", data={"password": PASSWORD, "csrf_token": tokens[n]})
    )
    assert sorted(r.status_code for r in accepted) == [303] + [404] * (PARALLEL - 1)
    assert members(client, owner.organization_id, owner.headers) == {owner.email: "owner", email: "billing"}


def test_an_idempotency_key_replays_the_invitation(client: TestClient, sign_up: Callable[[str], Owner]) -> None:
    owner = sign_up("inv-idem")
    email = unique_email("idem")
    first = invite(client, owner, email, **{"Idempotency-Key": "invite-once"})
    replay = invite(client, owner, email, **{"Idempotency-Key": "invite-once"})
    assert first.status_code == replay.status_code == 201 and first.json() == replay.json()
    assert len(mails_to(email)) == 1
    assert_problem(invite(client, owner, email, "owner", **{"Idempotency-Key": "invite-once"}), 422)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "a\x00b@example.com", "role": "billing"}, "email"),
        ({"email": "x" * 100_000 + "@example.com", "role": "billing"}, "email"),
        ({"email": "not-an-email", "role": "billing"}, "email"),
        ({"email": "ok@example.com", "role": "admin"}, "role"),
        ({"email": "ok@example.com", "role": "sales"}, "role"),
        ({"email": "ok@example.com", "role": "b" * 10_000}, "role"),
        ({"email": "ok@example.com"}, "role"),
        ({"email": 12, "role": "billing"}, "email"),
    ],
)
def test_bad_invitations_are_422(
    client: TestClient, sign_up: Callable[[str], Owner], body: dict[str, object], field: str
) -> None:
    owner = sign_up(f"inv-bad-{uuid.uuid4().hex[:6]}")
    r = client.post(f"/api/v1/organizations/{owner.organization_id}/invitations", json=body, headers=owner.headers)
    assert_problem(r, 422)
    assert field in {e["field"] for e in r.json()["errors"]}
    assert client.get(f"/api/v1/organizations/{owner.organization_id}/invitations", headers=owner.headers).json() == []


def test_bad_ids_and_links_are_4xx(client: TestClient, sign_up: Callable[[str], Owner]) -> None:
    owner = sign_up("inv-ids")
    base = f"/api/v1/organizations/{owner.organization_id}"
    assert_problem(client.get("/api/v1/organizations/not-a-uuid/members", headers=owner.headers), 422)
    assert_problem(client.delete(f"{base}/invitations/123", headers=owner.headers), 422)
    assert_problem(client.delete(f"{base}/members/a%00b", headers=owner.headers), 422)
    page = browser(client)
    for token in ("x", "invite_" + "A" * 43, "y" * 5000):
        r = page.get(f"/invitations/{token}")
        assert r.status_code == 404 and "does not work" in r.text
    assert page.get("/invitations/a%00b").status_code == 422


def test_opening_links_is_rate_limited_per_client_address(client: TestClient) -> None:
    within_one_window(TOKEN_GUESS_WINDOW_SECONDS, 30)
    page = browser(client)
    statuses = [page.get(f"/invitations/invite_guess{n}").status_code for n in range(TOKEN_GUESS_LIMIT)]
    assert statuses == [404] * TOKEN_GUESS_LIMIT
    limited = page.get("/invitations/invite_guess")
    assert limited.status_code == 429 and 0 < int(limited.headers["retry-after"]) <= TOKEN_GUESS_WINDOW_SECONDS
    assert "Too many" in limited.text
    assert page.post("/invitations/invite_guess", data={"password": PASSWORD}).status_code == 429
    assert browser(client).get("/invitations/invite_guess").status_code == 404  # another address
