"""Shared test fixtures: every test run works in databases of its own on the machine's PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
import pytest

from tests.harness.localstripe import localstripe, stripe_client  # noqa: F401  (one localstripe per run)

ADMIN_URL = os.environ.get("CANOPY_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
RUN_ID = uuid.uuid4().hex[:8]


def _admin_execute(sql: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def url_for_database(name: str) -> str:
    """The libpq URL of database ``name`` on the test server."""
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def admin_url() -> str:
    """Superuser URL of the test PostgreSQL server."""
    return ADMIN_URL


@pytest.fixture(scope="session")
def create_database() -> Iterator[Callable[[str], str]]:
    """Factory: creates an empty database named after the run and a label; drops them all at the end."""
    created: list[str] = []

    def create(label: str) -> str:
        name = f"t_{RUN_ID}_{label}_{len(created)}".lower()
        _admin_execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return url_for_database(name)

    yield create
    for name in created:
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def configured_control_plane(database_url: str, **env: str) -> Iterator[str]:
    """Migrate ``database_url`` and point this process's control plane at it (plus ``env``), then undo."""
    from control_plane.core.db import reset_engine
    from control_plane.core.migrate import upgrade
    from control_plane.core.settings import get_settings
    from control_plane.core.task_queue import close_sync_app

    upgrade(database_url)
    patch = pytest.MonkeyPatch()
    patch.setenv("CANOPY_DATABASE_URL", database_url)
    for key, value in env.items():
        patch.setenv(key, value)
    get_settings.cache_clear()
    reset_engine()
    try:
        yield database_url
    finally:
        close_sync_app()
        reset_engine()
        patch.undo()
        get_settings.cache_clear()
