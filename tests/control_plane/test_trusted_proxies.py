"""Forwarded headers count only from CANOPY_TRUSTED_PROXIES: against ``canopy api`` as the product starts it."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from control_plane.core.migrate import upgrade
from tests.api_process import canopy_api, free_port
from tests.control_plane.conftest import PASSWORD
from tests.rate_windows import within_one_window

SIGNUP_LIMIT = 3
SIGNUP_WINDOW_SECONDS = 600  # the default


@contextlib.contextmanager
def api_for(db_url: str, log_path: Path, **env: str) -> Iterator[str]:
    """``canopy api`` on a free loopback port (signups limited to three per client address); yields its URL."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CANOPY_")}
    environment.update(
        CANOPY_DATABASE_URL=db_url,
        CANOPY_DEV_MODE="true",
        CANOPY_SIGNUP_RATE_LIMIT=str(SIGNUP_LIMIT),
        FORWARDED_ALLOW_IPS="*",  # neither must uvicorn's own setting
        **env,
    )
    with canopy_api(environment, free_port(), log_path) as url:
        yield url


@pytest.fixture(scope="module")
def db_url(create_database: Callable[[str], str]) -> str:
    url = create_database("proxies")
    upgrade(url)
    return url


def _signup_statuses(url: str, forwarded_for: Callable[[int], str], count: int) -> list[int]:
    """Statuses of ``count`` signups, all within one window of the signup limit (counts restart at its end)."""
    within_one_window(SIGNUP_WINDOW_SECONDS, 30)
    statuses = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for n in range(count):
            slug = f"px-{uuid.uuid4().hex[:10]}"
            body = {"email": f"{slug}@example.com", "workspace": slug, "password": PASSWORD}
            r = client.post("/api/v1/signup", json=body, headers={"X-Forwarded-For": forwarded_for(n)})
            statuses.append(r.status_code)
    return statuses


def test_a_forged_forwarded_for_does_not_dodge_the_signup_limit(db_url: str, tmp_path: Path) -> None:
    with api_for(db_url, tmp_path / "api.log") as url:
        statuses = _signup_statuses(url, lambda n: f"203.0.113.{n + 1}", SIGNUP_LIMIT + 1)
    assert statuses == [202] * SIGNUP_LIMIT + [429]


def test_a_trusted_proxys_forwarded_for_is_honoured(db_url: str, tmp_path: Path) -> None:
    with api_for(db_url, tmp_path / "api.log", CANOPY_TRUSTED_PROXIES='["127.0.0.0/8"]') as url:
        distinct = _signup_statuses(url, lambda n: f"198.51.100.{n + 1}", SIGNUP_LIMIT + 1)
        one_client = _signup_statuses(url, lambda _: "192.0.2.7", SIGNUP_LIMIT + 1)
    assert distinct == [202] * (SIGNUP_LIMIT + 1)  # each forwarded client has a limit of its own
    assert one_client == [202] * SIGNUP_LIMIT + [429]
