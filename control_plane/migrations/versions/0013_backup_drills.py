"""backup drills

A restore drill re-reads every part of a completed backup, restores its database into a scratch database and
checks it; the row records the outcome (ok, or corrupt with what is wrong).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 05:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "backup_drills",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("backup_id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("outcome", sa.Enum("ok", "corrupt", name="drill_outcome"), nullable=False),
        sa.Column("problems", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("posts_restored", sa.BigInteger(), nullable=True),
        sa.Column("duration_seconds", sa.Float(), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["backup_id"],
            ["workspace_backups.id"],
            name=op.f("fk_backup_drills_backup_id_workspace_backups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_backup_drills_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backup_drills")),
    )
    op.create_index("ix_backup_drills_backup_created", "backup_drills", ["backup_id", "created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_backup_drills_backup_created", table_name="backup_drills")
    op.drop_table("backup_drills")
    sa.Enum(name="drill_outcome").drop(op.get_bind(), checkfirst=True)
