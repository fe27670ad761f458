"""User preferences and statuses (Mattermost's Preferences and Status tables).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "preferences",
        sa.Column("user_id", sa.String(26), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("category", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.Text, nullable=False, server_default=""),
    )
    op.create_table(
        "statuses",
        sa.Column("user_id", sa.String(26), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("manual", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("last_activity_at", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("dnd_end_time", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("prev_status", sa.String(32), nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_table("statuses")
    op.drop_table("preferences")
