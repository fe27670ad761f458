"""Schema migrations and first-start bootstrap, serialised across replicas by a PostgreSQL advisory lock."""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from workspace_server.canopy_admin import ensure_initial_admin
from workspace_server.settings import Settings
from workspace_server.teams import ensure_team

log = logging.getLogger(__name__)

# pg_advisory_lock key ("canopyws" in ASCII); advisory locks are per database, so per workspace.
MIGRATION_LOCK_KEY = 0x63616E6F70797773
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
VERSION_TABLE = "workspace_alembic_version"
# The newest revision under migrations/versions (a test holds it to Alembic's own view). When the database
# is already there, startup skips importing Alembic, which saves time and memory.
HEAD_REVISION = "0008"


async def _schema_revision(conn: AsyncConnection) -> str | None:
    if not await conn.scalar(text(f"SELECT to_regclass('{VERSION_TABLE}') IS NOT NULL")):
        return None
    revision: str | None = await conn.scalar(text(f"SELECT version_num FROM {VERSION_TABLE}"))
    return revision


def _upgrade(connection: Connection) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def schema_is_current(libpq_url: str, connect_timeout: int) -> bool:
    """Whether the schema is at :data:`HEAD_REVISION`, asked over one short libpq connection (no pool, no Alembic)."""
    with psycopg.connect(libpq_url, connect_timeout=connect_timeout, autocommit=True) as conn:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [VERSION_TABLE]).fetchone()
        if not (row and row[0]):
            return False
        return conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone() == (HEAD_REVISION,)


async def upgrade_schema(engine: AsyncEngine) -> None:
    """Bring the schema to the latest revision under the migration lock (Alembic is imported only if behind)."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        try:
            if await _schema_revision(conn) != HEAD_REVISION:
                await conn.run_sync(_upgrade)
                await conn.commit()
        finally:
            await conn.rollback()
            await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
            await conn.commit()


async def migrate_and_bootstrap(engine: AsyncEngine, settings: Settings) -> None:
    """Bring the schema to the latest revision and create the first team with its default channels (and the
    initial admin, when configured) if missing, in one transaction, while holding the migration lock so that
    replicas starting together take turns."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        try:
            if await _schema_revision(conn) != HEAD_REVISION:
                await conn.run_sync(_upgrade)
            await ensure_team(conn, settings.team_name, settings.team_title)
            if settings.initial_admin_email:
                await ensure_initial_admin(
                    conn,
                    settings.team_name,
                    settings.initial_admin_email,
                    settings.initial_admin_username,
                    settings.initial_admin_hash,
                )
            await conn.commit()
        finally:
            await conn.rollback()
            await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
            await conn.commit()
    log.info("schema up to date; team %s ready", settings.team_name)
