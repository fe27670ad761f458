"""Authentication holes of the API: password tokens only for one's own organizations, rate limits with
Retry-After on the token exchange, the same work for unknown emails, and a signup that does not tell
which emails are registered."""

from __future__ import annotations

import itertools
import statistics
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from control_plane.accounts import repository as accounts_repo
from control_plane.accounts.models import Account
from control_plane.cli import main as cli_main
from control_plane.core.authz import STAFF_ROLES, Role
from control_plane.core.db import session_scope
from control_plane.mail import service as mail
from control_plane.workspaces.models import Workspace
from tests.conftest import configured_control_plane
from tests.control_plane.conftest import PASSWORD, Owner
from tests.rate_windows import within_one_window

PROBLEM = "application/problem+json"
SIGNUP_LIMIT = 8
SIGNUP_WINDOW_SECONDS = 600
SIGN_IN_WINDOW_SECONDS = 900
SIGN_IN_EMAIL_LIMIT = 10
_addresses = itertools.count(1)


@pytest.fixture(scope="module")
def cp_database(create_database: Callable[[str], str]) -> Iterator[str]:
    """This module's database; signups are limited to a few per client address."""
    env = {"CANOPY_DEV_MODE": "true", "CANOPY_SIGNUP_RATE_LIMIT": str(SIGNUP_LIMIT)}
    with configured_control_plane(create_database("auth"), **env) as url:
        yield url


@pytest.fixture
def caller(client: TestClient) -> TestClient:
    """The app as seen from a client address no other test uses (its own rate-limit buckets)."""
    return TestClient(client.app, client=(f"10.9.0.{next(_addresses)}", 40000))


def token_for(client: TestClient, email: str, organization_id: object = None) -> tuple[int, dict[str, object]]:
    body: dict[str, object] = {"email": email, "password": PASSWORD}
    if organization_id is not None:
        body["organization_id"] = str(organization_id)
    r = client.post("/api/v1/auth/token", json=body)
    return r.status_code, r.json()


def test_a_password_token_carries_the_role_in_an_organization_of_ones_own(
    client: TestClient, caller: TestClient, sign_up: Callable[[str], Owner]
) -> None:
    mine, theirs, member = sign_up("role-mine"), sign_up("role-theirs"), sign_up("role-member")
    with session_scope() as session:
        account = session.scalars(select(Account).where(Account.email == member.email)).one()
        accounts_repo.add_membership(session, uuid.UUID(mine.organization_id), account.id, Role.billing)
    stranger_org = uuid.uuid4()

    # An organization that is not theirs (or does not exist) is 404, the same for owners and billing members.
    for email, org in (
        (mine.email, theirs.organization_id),
        (theirs.email, mine.organization_id),
        (member.email, theirs.organization_id),
        (mine.email, stranger_org),
    ):
        status, problem = token_for(caller, email, org)
        assert status == 404, (email, org, problem)
        assert problem["type"].endswith("/not-found") and problem["detail"] == "Organization was not found"

    # Legitimate: an owner of their organization, a billing member with billing.
    status, token = token_for(caller, mine.email, mine.organization_id)
    assert (status, token["role"], token["organization_id"]) == (201, "owner", mine.organization_id)
    status, token = token_for(caller, member.email, mine.organization_id)
    assert (status, token["role"], token["organization_id"]) == (201, "billing", mine.organization_id)
    status, problem = token_for(caller, member.email)  # two organizations: which one must be said
    assert status == 422 and problem["errors"] == [{"field": "organization_id", "detail": problem["detail"]}]

    # Staff keep staff tokens, whatever organization they name.
    for role in sorted(STAFF_ROLES):
        email = f"{role}-{uuid.uuid4().hex[:6]}@canopy.example"
        assert cli_main(["create-account", "--email", email, "--role", role, "--password", PASSWORD]) == 0
        status, token = token_for(caller, email, theirs.organization_id)
        assert (status, token["role"], token["organization_id"]) == (201, role, None)


def test_the_token_exchange_is_rate_limited_per_email_with_retry_after(caller: TestClient) -> None:
    within_one_window(SIGN_IN_WINDOW_SECONDS)
    email = f"nobody-{uuid.uuid4().hex[:6]}@example.com"
    statuses = [
        caller.post("/api/v1/auth/token", json={"email": email, "password": "wrong"}).status_code
        for _ in range(SIGN_IN_EMAIL_LIMIT)
    ]
    assert statuses == [401] * SIGN_IN_EMAIL_LIMIT
    r = caller.post("/api/v1/auth/token", json={"email": email.upper(), "password": "wrong"})
    assert r.status_code == 429 and r.headers["content-type"] == PROBLEM
    assert r.json()["type"].endswith("/rate-limited")
    assert 0 < int(r.headers["Retry-After"]) <= 900 and int(r.headers["Retry-After"]) == r.json()["retry_after"]


def test_web_sign_in_and_the_token_exchange_share_one_limit(caller: TestClient) -> None:
    within_one_window(SIGN_IN_WINDOW_SECONDS)
    email = f"shared-{uuid.uuid4().hex[:6]}@example.com"
    half = SIGN_IN_EMAIL_LIMIT // 2
    for _ in range(half):
        assert caller.post("/api/v1/auth/token", json={"email": email, "password": "wrong"}).status_code == 401
    csrf = caller.get("/login").text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    for _ in range(SIGN_IN_EMAIL_LIMIT - half):
        r = caller.post("/login", data={"email": email, "password": "wrong", "csrf_token": csrf})
        assert r.status_code == 401, r.text
    r = caller.post("/api/v1/auth/token", json={"email": email, "password": "wrong"})
    assert r.status_code == 429 and "Retry-After" in r.headers


def test_every_api_rate_limit_answers_with_retry_after(caller: TestClient) -> None:
    within_one_window(SIGNUP_WINDOW_SECONDS)
    statuses = []
    for _ in range(SIGNUP_LIMIT + 1):  # a reserved address: refused after the limit is counted
        r = caller.post("/api/v1/signup", json={"email": "x@example.com", "workspace": "www", "password": PASSWORD})
        statuses.append(r.status_code)
    assert statuses == [422] * SIGNUP_LIMIT + [429]
    assert r.headers["content-type"] == PROBLEM and int(r.headers["Retry-After"]) > 0


def _median_seconds(call: Callable[[], object], times: int = 5) -> float:
    durations = []
    for _ in range(times):
        started = time.perf_counter()
        call()
        durations.append(time.perf_counter() - started)
    return statistics.median(durations)


def test_an_unknown_email_costs_as_much_as_a_known_one(
    caller: TestClient, client: TestClient, sign_up: Callable[[str], Owner]
) -> None:
    known = sign_up("timing-known").email
    unverified = f"late-{uuid.uuid4().hex[:6]}@example.com"
    body = {"email": unverified, "workspace": f"late-{uuid.uuid4().hex[:6]}", "password": PASSWORD}
    assert caller.post("/api/v1/signup", json=body).status_code == 202
    emails = (f"unknown-{n}-{uuid.uuid4().hex[:6]}@example.com" for n in itertools.count())

    def attempt(email: str) -> None:
        r = caller.post("/api/v1/auth/token", json={"email": email, "password": "wrong password"})
        assert r.status_code == 401, r.text

    attempt(next(emails))  # the first unknown email also pays for making the dummy hash
    known_s = _median_seconds(lambda: attempt(known))
    unknown_s = _median_seconds(lambda: attempt(next(emails)))
    unverified_s = _median_seconds(lambda: attempt(unverified))
    print(f"median 401: known {known_s * 1000:.0f} ms, unknown {unknown_s * 1000:.0f} ms, "
          f"unverified {unverified_s * 1000:.0f} ms")  # fmt: skip
    assert unknown_s >= known_s / 2 and unverified_s >= known_s / 2


def _mails_to(email: str) -> list[tuple[str, str]]:
    with session_scope() as session:
        return [(m.subject, m.body) for m in mail.recent(session, limit=10, to=email)]


def test_signup_answers_alike_for_a_registered_email(caller: TestClient, sign_up: Callable[[str], Owner]) -> None:
    owner = sign_up("alike-owner")
    new_email = f"new-{uuid.uuid4().hex[:6]}@example.com"
    fresh = caller.post("/api/v1/signup", json={"email": new_email, "workspace": "alike-new", "password": PASSWORD})
    taken = caller.post(
        "/api/v1/signup", json={"email": owner.email.upper(), "workspace": "alike-taken", "password": PASSWORD}
    )
    assert fresh.status_code == taken.status_code == 202, taken.text
    assert fresh.json() == {**taken.json(), "email": new_email, "workspace": "alike-new"}
    assert taken.json()["email"] == owner.email
    # The holder of the registered email is told, with a way to sign in; nothing else was made.
    subject, body = _mails_to(owner.email)[0]
    assert subject == "Sign in to Canopy"
    assert "tried to sign up" in body and "http://localhost:8000/login" in body and "not you, ignore" in body
    with session_scope() as session:
        assert session.scalars(select(Workspace).where(Workspace.slug == "alike-taken")).first() is None
        assert session.scalar(select(func.count()).select_from(Account).where(Account.email == owner.email)) == 1


def test_signing_up_again_with_an_unconfirmed_email_mails_a_new_link(caller: TestClient) -> None:
    email = f"again-{uuid.uuid4().hex[:6]}@example.com"
    for slug in ("again-first", "again-second"):
        r = caller.post("/api/v1/signup", json={"email": email, "workspace": slug, "password": PASSWORD})
        assert r.status_code == 202, r.text
    mails = _mails_to(email)
    assert [subject for subject, _ in mails] == ["Confirm your email for Canopy"] * 2
    assert "tried to sign up" in mails[0][1] and "/signup/verify?token=" in mails[0][1]
    with session_scope() as session:
        assert session.scalars(select(Workspace).where(Workspace.slug == "again-second")).first() is None
