"""idempotency secret hash

A request's secret (a signup's password) is left out of the request digest, which could be
brute-forced; its argon2 hash is kept instead so that a replay with another secret is refused.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 23:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("idempotency_records", sa.Column("secret_hash", sa.String(length=200), nullable=True))


def downgrade() -> None:
    op.drop_column("idempotency_records", "secret_hash")
