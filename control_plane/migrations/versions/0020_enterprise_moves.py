"""enterprise moves

``enterprise_moves``: a Professional workspace moved into a new Enterprise silo of the same organization (its
downtime window, the target, the final backup copied, each step taken; at most one open move per source).

Follows 0018 (contracts); the sales branch added no migration, so there is no 0019.

Revision ID: 0020
Revises: 0018
Create Date: 2026-12-07 14:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0020"
down_revision = "0018"
branch_labels = None
depends_on = None

STATES = ("scheduled", "stopping", "copying", "cut_over", "done", "failed")


def upgrade() -> None:
    state = postgresql.ENUM(*STATES, name="enterprise_move_state")
    op.create_table(
        "enterprise_moves",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("organization_id", sa.Uuid(), sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("source_workspace_id", sa.Uuid(), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("target_workspace_id", sa.Uuid(), sa.ForeignKey("workspaces.id", ondelete="SET NULL"), nullable=True),
        sa.Column("backup_id", sa.Uuid(), sa.ForeignKey("workspace_backups.id", ondelete="SET NULL"), nullable=True),
        sa.Column("slug", sa.String(63), nullable=False),
        sa.Column("retired_slug", sa.String(63), nullable=False),
        sa.Column("region", sa.String(50), nullable=True),
        sa.Column("downtime_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("downtime_minutes", sa.Integer(), nullable=False),
        sa.Column("state", state, nullable=False),
        sa.Column("steps", postgresql.JSONB(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_index("ix_enterprise_moves_org_created", "enterprise_moves", ["organization_id", "created_at"])
    op.create_index(
        "uq_enterprise_moves_open_source",
        "enterprise_moves",
        ["source_workspace_id"],
        unique=True,
        postgresql_where=sa.text("state IN ('scheduled', 'stopping', 'copying', 'cut_over')"),
    )


def downgrade() -> None:
    op.drop_table("enterprise_moves")
    postgresql.ENUM(name="enterprise_move_state").drop(op.get_bind())
