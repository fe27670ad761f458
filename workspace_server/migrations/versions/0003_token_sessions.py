"""Personal access tokens authenticate through a session row of their own.

Revision ID: 0003
Revises: 0002
Create Date: 2025-02-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "sessions",
        sa.Column(
            "access_token_id",
            sa.String(26),
            sa.ForeignKey("user_access_tokens.id", ondelete="CASCADE"),
            nullable=True,
        ),
    )
    op.create_index("ix_sessions_access_token_id", "sessions", ["access_token_id"])


def downgrade() -> None:
    op.drop_index("ix_sessions_access_token_id", "sessions")
    op.drop_column("sessions", "access_token_id")
