"""workspace exports

An owner (or an operator or admin) exports a workspace: a worker pulls a Mattermost bulk-export archive from its
server and keeps it (local runtime: under the state directory; aws: the workspace's bucket, SSE-KMS). The row
records progress, where the archive is, its size and checksum. At most one export per workspace is queued or
running at a time.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workspace_exports",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("state", sa.Enum("queued", "running", "completed", "failed", name="export_state"), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("bytes_written", sa.BigInteger(), nullable=False),
        sa.Column("posts_exported", sa.BigInteger(), nullable=False),
        sa.Column("location", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("progress_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_workspace_exports_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_workspace_exports_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workspace_exports")),
    )
    op.create_index(
        "ix_workspace_exports_workspace_created", "workspace_exports", ["workspace_id", "created_at"], unique=False
    )
    op.create_index(
        "uq_workspace_exports_open",
        "workspace_exports",
        ["workspace_id"],
        unique=True,
        postgresql_where=sa.text("state IN ('queued', 'running')"),
    )


def downgrade() -> None:
    op.drop_index("uq_workspace_exports_open", table_name="workspace_exports")
    op.drop_index("ix_workspace_exports_workspace_created", table_name="workspace_exports")
    op.drop_table("workspace_exports")
    sa.Enum(name="export_state").drop(op.get_bind(), checkfirst=True)
