"""Release identity: the release version and schema level a server reports in its ping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import psycopg
from alembic.config import Config
from alembic.script import ScriptDirectory

from control_plane.core.settings import Settings as ControlPlaneSettings
from workspace_server.migrate import MIGRATIONS_DIR, VERSION_TABLE
from workspace_server.release import RELEASE_VERSION, SCHEMA_REVISION

MATTERMOST_PING_KEYS = {
    "status",
    "database_status",
    "ActiveSearchBackend",
    "AndroidLatestVersion",
    "AndroidMinVersion",
    "IosLatestVersion",
    "IosMinVersion",
}


def _ping(server: Any) -> dict[str, Any]:
    response = httpx.get(f"{server.base_url}/api/v4/system/ping", timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_schema_revision_is_the_newest_migration() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    heads = ScriptDirectory.from_config(config).get_heads()
    assert [int(head) for head in heads] == [SCHEMA_REVISION]


def test_release_version_is_the_control_planes_default_release() -> None:
    assert ControlPlaneSettings.model_fields["default_release"].default == RELEASE_VERSION


def test_ping_says_the_release_and_the_schema_level_the_database_is_at(
    create_database: Any, spawn_server: Any, tmp_path: Path
) -> None:
    server = spawn_server(create_database("ws_release"), tmp_path)
    server.wait_ready()
    body = _ping(server)
    assert set(body) == MATTERMOST_PING_KEYS | {"CanopyRelease", "CanopySchema"}
    assert body["status"] == body["database_status"] == "OK"
    assert body["CanopyRelease"] == RELEASE_VERSION
    assert body["CanopySchema"] == SCHEMA_REVISION
    with psycopg.connect(server.database_url, autocommit=True) as db:
        # A newer release migrated the database (as when it starts before this one stops): read at each ping.
        db.execute(f"UPDATE {VERSION_TABLE} SET version_num = %s", [f"{SCHEMA_REVISION + 1:04d}"])
        assert _ping(server)["CanopySchema"] == SCHEMA_REVISION + 1
        # A revision that is not a number says nothing: the last level seen stands.
        db.execute(f"UPDATE {VERSION_TABLE} SET version_num = 'abc'")
        assert _ping(server)["CanopySchema"] == SCHEMA_REVISION + 1
        db.execute(f"UPDATE {VERSION_TABLE} SET version_num = %s", [f"{SCHEMA_REVISION:04d}"])
    assert _ping(server)["CanopySchema"] == SCHEMA_REVISION
