"""The workspace's billing plan as the Canopy control plane sets it (``PUT /api/v4/canopy/plan``): one row at most.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workspace_plan",
        # Always true: the primary key lets the table hold one row only.
        sa.Column("id", sa.Boolean, primary_key=True, server_default=sa.true()),
        sa.Column("subscription_id", sa.String(26), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("trial_end_at", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("delinquent_since", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("billing_url", sa.String(2048), nullable=False, server_default=""),
        sa.CheckConstraint("id", name="ck_workspace_plan_one_row"),
        sa.CheckConstraint("state IN ('trialing', 'active', 'past_due', 'suspended')", name="ck_workspace_plan_state"),
    )


def downgrade() -> None:
    op.drop_table("workspace_plan")
