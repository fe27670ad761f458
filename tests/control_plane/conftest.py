"""Control-plane API tests: the real app in-process against a migrated database of their own."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from control_plane.core.db import session_scope
from control_plane.mail import service as mail
from tests.conftest import configured_control_plane

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def cp_database(create_database: Callable[[str], str]) -> Iterator[str]:
    """A migrated control-plane database, configured for this module's app."""
    env = {
        "CANOPY_DEV_MODE": "true",
        "CANOPY_SIGNUP_RATE_LIMIT": "1000",
        # The Stripe webhook route serves (refusing unsigned deliveries with a 400); without a secret it is a 503.
        "CANOPY_STRIPE_WEBHOOK_SECRETS": '["whsec_control_plane_tests"]',
    }
    with configured_control_plane(create_database("cp"), **env) as url:
        yield url


@pytest.fixture(scope="module")
def client(cp_database: str) -> Iterator[TestClient]:
    """The control-plane app."""
    from control_plane.app import create_app

    with TestClient(create_app()) as test_client:
        yield test_client


def verification_token(email: str) -> str:
    """The token of the newest verification mail sent to ``email``."""
    with session_scope() as session:
        body = mail.recent(session, limit=1, to=email)[0].body
    match = re.search(r"token=([A-Za-z0-9_\-]+)", body)
    assert match, body
    return match.group(1)


@dataclass
class Owner:
    """A signed-up, verified owner with a token."""

    email: str
    organization_id: str
    workspace: dict[str, Any]
    headers: dict[str, str]


@pytest.fixture(scope="module")
def sign_up(client: TestClient) -> Callable[[str], Owner]:
    """Factory: sign up ``slug`` with a fresh email, verify it and get an owner token."""

    def make(slug: str) -> Owner:
        email = f"owner@{slug}.example.com"
        r = client.post("/api/v1/signup", json={"email": email, "workspace": slug, "password": PASSWORD})
        assert r.status_code == 202, r.text
        r = client.post("/api/v1/signup/verify", json={"token": verification_token(email)})
        assert r.status_code == 200, r.text
        r = client.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD})
        assert r.status_code == 201, r.text
        headers = {"Authorization": f"Bearer {r.json()['token']}"}
        return Owner(email, r.json()["organization_id"], r.json(), headers)

    return make


def staff_token(email: str, role: str) -> str:
    """A token for a new staff account, made by the ``canopy create-account`` command."""
    from control_plane.cli import main as cli_main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli_main(["create-account", "--email", email, "--role", role]) == 0
    return out.getvalue().strip().splitlines()[-1]
