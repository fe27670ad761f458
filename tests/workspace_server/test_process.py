"""The process contract with the control plane: runtime lock, pid and port files, migrations, signals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from argon2 import PasswordHasher
from sqlalchemy import create_engine

from tests.workspace_server.conftest import ADMIN_PASSWORD, server_env
from workspace_server.migrate import HEAD_REVISION, MIGRATIONS_DIR, VERSION_TABLE
from workspace_server.schema import metadata
from workspace_server.settings import sqlalchemy_url

pytestmark = pytest.mark.slow


def ping(server: Any) -> dict[str, Any]:
    response = httpx.get(f"{server.base_url}/api/v4/system/ping", timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_second_server_for_the_same_runtime_dir_exits_with_status_3(
    create_database: Any, spawn_server: Any, tmp_path: Path
) -> None:
    database = create_database("ws_lock")
    first = spawn_server(database, tmp_path)
    first.wait_ready()
    assert (first.runtime_dir / "server.pid").read_text().strip() == str(first.proc.pid)

    second = spawn_server(database, tmp_path)
    assert second.proc.wait(timeout=30) == 3
    assert "another workspace server already runs for this workspace" in second.log()
    # The loser touched nothing: the winner's files still describe the winner, which still serves.
    assert (first.runtime_dir / "server.pid").read_text().strip() == str(first.proc.pid)
    assert int((first.runtime_dir / "server.port").read_text()) == first.port
    assert ping(first)["status"] == "OK"


def test_two_replicas_on_a_fresh_database_start_together(
    create_database: Any, spawn_server: Any, tmp_path: Path
) -> None:
    database = create_database("ws_replicas")
    replicas = [spawn_server(database, tmp_path / name) for name in ("a", "b", "c")]
    for replica in replicas:
        replica.wait_ready()
    assert len({r.port for r in replicas}) == 3
    for replica in replicas:
        assert ping(replica)["status"] == "OK"
    with psycopg.connect(database) as db:
        assert db.execute("SELECT count(*) FROM teams").fetchone() == (1,)
        names = db.execute("SELECT name FROM channels ORDER BY name").fetchall()
        assert names == [("off-topic",), ("town-square",)]
        assert db.execute("SELECT version_num FROM workspace_alembic_version").fetchall() == [(HEAD_REVISION,)]
    assert sum("Running upgrade" in r.log() for r in replicas) == 1


def test_migrations_run_in_a_child_so_the_serving_process_never_loads_alembic(
    create_database: Any, tmp_path: Path
) -> None:
    database = create_database("ws_migrate_child")
    script = (
        "import logging, sys\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "from workspace_server.__main__ import upgrade_in_child\n"
        "from workspace_server.settings import Settings\n"
        "upgrade_in_child(Settings.from_environment())\n"
        "print('alembic loaded' if 'alembic' in sys.modules else 'alembic not loaded')\n"
    )
    env = server_env(database, tmp_path / "run", tmp_path / "files")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "alembic not loaded"
    assert "Running upgrade" in result.stderr  # the child did migrate
    with psycopg.connect(database) as db:
        assert db.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall() == [(HEAD_REVISION,)]


def test_sigterm_stops_cleanly_and_frees_the_runtime_dir(
    create_database: Any, spawn_server: Any, tmp_path: Path
) -> None:
    database = create_database("ws_stop")
    server = spawn_server(database, tmp_path)
    server.wait_ready()
    assert server.stop() == 0
    assert not (server.runtime_dir / "server.port").exists()
    assert not (server.runtime_dir / "server.pid").exists()
    # The lock died with it: a new server takes the same directory, and finds the schema in place.
    again = spawn_server(database, tmp_path)
    again.wait_ready()
    assert ping(again)["status"] == "OK"
    assert "Running upgrade" not in again.log()


def test_migrated_schema_matches_the_table_definitions(server: Any) -> None:
    engine = create_engine(sqlalchemy_url(server.database_url))
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        assert compare_metadata(context, metadata) == []
    engine.dispose()


def test_database_url_with_a_socket_directory(create_database: Any, spawn_server: Any, tmp_path: Path) -> None:
    socket_dir = Path("/var/run/postgresql")
    if not (socket_dir / ".s.PGSQL.5432").exists():
        pytest.skip("no local PostgreSQL socket")
    name = create_database("ws_socket").rpartition("/")[2]
    server = spawn_server(f"postgresql://postgres@/{name}?host={socket_dir}", tmp_path)
    server.wait_ready()
    assert ping(server)["database_status"] == "OK"


def test_initial_admin_from_the_environment_is_created_once(
    create_database: Any, spawn_server: Any, tmp_path: Path
) -> None:
    database = create_database("ws_env_admin")
    admin = {
        "WS_INITIAL_ADMIN_EMAIL": "Ada@Acme.test",
        "WS_INITIAL_ADMIN_USERNAME": "ada",
        "WS_INITIAL_ADMIN_PASSWORD_HASH": PasswordHasher().hash(ADMIN_PASSWORD),
    }
    for _ in range(2):  # the second start finds the admin and changes nothing
        server = spawn_server(database, tmp_path, **admin)
        server.wait_ready()
        login = httpx.post(
            f"{server.base_url}/api/v4/users/login",
            json={"login_id": "ada@acme.test", "password": ADMIN_PASSWORD},
            timeout=10,
        )
        assert login.status_code == 200, login.text
        assert "system_admin" in login.json()["roles"]
        assert server.stop() == 0
    with psycopg.connect(database) as db:
        assert db.execute("SELECT count(*) FROM users").fetchone() == (1,)
        assert db.execute("SELECT count(*) FROM team_members WHERE scheme_admin").fetchone() == (1,)


def test_an_incomplete_initial_admin_is_a_configuration_error(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "WS_DATABASE_URL": "postgresql://ws@127.0.0.1/ws",
        "WS_CONTROL_TOKEN": "token",
        "WS_INITIAL_ADMIN_EMAIL": "ada@acme.test",
        "WS_INITIAL_ADMIN_PASSWORD_HASH": "$argon2id$secret-hash",
    }
    result = subprocess.run(
        [sys.executable, "-m", "workspace_server"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "WS_INITIAL_ADMIN_EMAIL, _USERNAME and _PASSWORD_HASH must be set together" in result.stderr
    assert "secret-hash" not in result.stderr


def test_bad_configuration_exits_2_without_echoing_secrets(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "WS_DATABASE_URL": "mysql://root:hunter2secret@db/acme",
        "WS_CONTROL_TOKEN": "super-secret-control-token",
        "WS_RUNTIME_DIR": str(tmp_path / "run"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "workspace_server"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "WS_DATABASE_URL" in result.stderr
    assert "hunter2secret" not in result.stderr and "super-secret-control-token" not in result.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "workspace_server"],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2
    assert "WS_DATABASE_URL" in missing.stderr and "WS_CONTROL_TOKEN" in missing.stderr


def test_head_revision_constant_matches_the_migrations() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert ScriptDirectory.from_config(config).get_heads() == [HEAD_REVISION]
