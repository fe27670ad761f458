"""Schema migrations: apply them, and tell whether a database is up to date."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool

from control_plane.core.db import sqlalchemy_url

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
FIX_COMMAND = "canopy migrate"


def alembic_config(libpq_url: str) -> Config:
    """An Alembic config for the database at ``libpq_url``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(libpq_url).replace("%", "%%"))
    return config


def upgrade(libpq_url: str) -> None:
    """Apply every pending migration."""
    command.upgrade(alembic_config(libpq_url), "head")


def pending_revision(libpq_url: str) -> str | None:
    """The head revision if the database is behind it, else None."""
    head = ScriptDirectory.from_config(alembic_config(libpq_url)).get_current_head()
    engine = create_engine(sqlalchemy_url(libpq_url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
    return None if current == head else head


class DatabaseNotMigrated(RuntimeError):
    """The database schema is older than the code."""


def require_migrated(libpq_url: str) -> None:
    """Refuse to run on a database that is not at the head revision."""
    if pending_revision(libpq_url) is not None:
        raise DatabaseNotMigrated(
            f"The control-plane database is not migrated to the current schema. Run `{FIX_COMMAND}` "
            "(with CANOPY_DATABASE_URL pointing at it) and start again."
        )
