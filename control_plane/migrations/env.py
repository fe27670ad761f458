"""Alembic environment of the control plane (configured in code by control_plane.core.migrate)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from control_plane.core.all_models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url, "control_plane.core.migrate sets sqlalchemy.url"

engine = create_engine(url, poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True)
    with context.begin_transaction():
        # One migrator at a time, whichever process starts first.
        context.execute("SELECT pg_advisory_xact_lock(7301001)")
        context.run_migrations()
engine.dispose()
