"""The workspace's last use, shared by its server processes for the control plane's idle hibernation: one row.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "canopy_activity",
        # Always true: the primary key lets the table hold one row only.
        sa.Column("id", sa.Boolean, primary_key=True, server_default=sa.true()),
        sa.Column("last_request_at", sa.BigInteger, nullable=False, server_default="0"),
        sa.CheckConstraint("id", name="ck_canopy_activity_one_row"),
    )


def downgrade() -> None:
    op.drop_table("canopy_activity")
