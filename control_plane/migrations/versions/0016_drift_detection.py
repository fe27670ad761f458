"""drift detection

Each workspace gets ``verify_phase``, its place in the slow full re-verification period (uniform in [0, 1), so
re-verifications spread evenly over the period), indexed for the resync's window query. ``drift_cursors`` keeps
where each drift source left off: a Kubernetes watch's last resource version per cluster and kind, the
re-verification's last tick.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 08:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "workspaces",
        sa.Column("verify_phase", sa.Float(), server_default=sa.text("random()"), nullable=False),
    )
    op.create_index("ix_workspaces_verify_phase", "workspaces", ["verify_phase"])
    op.create_table(
        "drift_cursors",
        sa.Column("source", sa.String(300), primary_key=True),
        sa.Column("position", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("drift_cursors")
    op.drop_index("ix_workspaces_verify_phase", table_name="workspaces")
    op.drop_column("workspaces", "verify_phase")
