"""The app refuses an unmigrated database and names the fix; migrations keep the rows they find."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import psycopg
import pytest
from alembic import command

from control_plane.core.migrate import (
    DatabaseNotMigrated,
    alembic_config,
    pending_revision,
    require_migrated,
    upgrade,
)


def test_unmigrated_database_is_refused_with_the_fix(create_database: Callable[[str], str]) -> None:
    url = create_database("unmigrated")
    with pytest.raises(DatabaseNotMigrated, match="canopy migrate"):
        require_migrated(url)
    result = subprocess.run(
        [sys.executable, "-m", "control_plane.cli", "api", "--port", "0"],
        env={"CANOPY_DATABASE_URL": url, "CANOPY_DEV_MODE": "true", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "canopy migrate" in result.stderr
    upgrade(url)
    assert pending_revision(url) is None
    require_migrated(url)


def test_cells_registered_before_0004_get_an_empty_oidc_provider(create_database: Callable[[str], str]) -> None:
    url = create_database("cells_0004")
    command.upgrade(alembic_config(url), "0003")
    columns = (
        "id, name, region, cluster_name, cluster_endpoint, cluster_ca, postgres_host, postgres_port,"
        " postgres_admin_secret_arn, bucket_name, kms_key_arn, zone_id, domain, control_plane_role_arn,"
        " private_subnet_ids, max_workspaces, max_databases, state"
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"INSERT INTO cells ({columns}) VALUES (gen_random_uuid(), 'old', 'eu-west-1', 'c', 'https://c', 'ca',"
            " 'db', 5432, 'arn:s', 'b', 'arn:k', 'Z1', 'old.example.com', 'arn:r', ARRAY['subnet-1'], 1, 1, 'active')"
        )
    upgrade(url)
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT oidc_provider_arn FROM cells WHERE name = 'old'").fetchone() == ("",)


def test_workspaces_hibernated_before_0006_wake_to_active(create_database: Callable[[str], str]) -> None:
    url = create_database("workspaces_0006")
    command.upgrade(alembic_config(url), "0004")
    columns = (
        "id, organization_id, slug, display_name, tier, region, desired_release, lifecycle_state, conditions,"
        " outputs, generation, observed_generation, reconcile_attempts"
    )
    with psycopg.connect(url, autocommit=True) as conn:
        org = conn.execute("INSERT INTO organizations (id, name) VALUES (gen_random_uuid(), 'o') RETURNING id")
        org_id = org.fetchone()[0]  # type: ignore[index]
        for slug, state in (("asleep", "hibernated"), ("awake", "trialing")):
            conn.execute(
                f"INSERT INTO workspaces ({columns}) VALUES (gen_random_uuid(), %s, %s, %s, 'professional', 'local',"
                " '0.1.0', %s, '[]', '{}', 1, 0, 0)",
                [org_id, slug, slug, state],
            )
    upgrade(url)
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT slug, resume_state FROM workspaces ORDER BY slug").fetchall()
        assert rows == [("asleep", "active"), ("awake", None)]
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("UPDATE workspaces SET resume_state = 'trialing' WHERE slug = 'awake'")


def test_the_migrations_make_exactly_the_tables_the_models_declare(create_database: Callable[[str], str]) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine

    import control_plane.core.all_models  # noqa: F401  (every table)
    from control_plane.core.db import Base, sqlalchemy_url

    url = create_database("model_drift")
    upgrade(url)
    engine = create_engine(sqlalchemy_url(url))
    try:
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    # procrastinate's tables are its own (migration 0002 installs its schema); everything else must agree.
    assert [d for d in differences if "procrastinate" not in str(d)] == []
