"""procrastinate task-queue schema

The queue lives in the same database as the control plane, so job enqueueing can share a
transaction with the state change that causes it. Later procrastinate upgrades ship their own
SQL migrations; each one gets an Alembic revision that executes it.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op
from procrastinate.schema import SchemaManager

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(SchemaManager.get_schema())


def downgrade() -> None:
    op.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
