"""Alembic environment for the workspace server's own schema."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection, create_engine

from workspace_server.migrate import VERSION_TABLE
from workspace_server.schema import metadata


def _run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:  # the server passes its own, inside its migration lock
        _run_migrations(connection)
        return
    from workspace_server.settings import sqlalchemy_url

    engine = create_engine(sqlalchemy_url(os.environ["WS_DATABASE_URL"]))
    with engine.connect() as conn:
        _run_migrations(conn)
        conn.commit()


_main()
