"""export retention

An export whose archive was removed (past ``export_keep_days``, or with its purged workspace) is ``expired``.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 06:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TYPE export_state ADD VALUE IF NOT EXISTS 'expired'")


def downgrade() -> None:
    # PostgreSQL cannot drop an enum value: the type is made again without it (an expired export reads as failed).
    op.drop_index("uq_workspace_exports_open", table_name="workspace_exports")  # its predicate names the type
    op.execute("ALTER TYPE export_state RENAME TO export_state_0015")
    op.execute("CREATE TYPE export_state AS ENUM ('queued', 'running', 'completed', 'failed')")
    op.execute(
        "ALTER TABLE workspace_exports ALTER COLUMN state TYPE export_state USING"
        " (CASE WHEN state::text = 'expired' THEN 'failed' ELSE state::text END)::export_state"
    )
    op.execute("DROP TYPE export_state_0015")
    op.create_index(
        "uq_workspace_exports_open",
        "workspace_exports",
        ["workspace_id"],
        unique=True,
        postgresql_where=sa.text("state IN ('queued', 'running')"),
    )
