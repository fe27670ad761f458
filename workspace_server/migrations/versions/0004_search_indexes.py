"""Search indexes: posts newest first across channels (a search for a common word walks them and stops after a
page) and by author (``from:``).

Revision ID: 0004
Revises: 0003
Create Date: 2025-02-03
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_posts_create_at_id", "posts", ["create_at", "id"])
    op.create_index("ix_posts_user_id_create_at", "posts", ["user_id", "create_at"])


def downgrade() -> None:
    op.drop_index("ix_posts_user_id_create_at", "posts")
    op.drop_index("ix_posts_create_at_id", "posts")
