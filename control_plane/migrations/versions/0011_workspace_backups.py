"""workspace backups and restores

A backup copies a workspace's database and files (encrypted at rest) and records its parts, size, checksum, posts
and files counts and duration; a restore puts one into a new workspace (a clone) or back into the workspace itself.
A restore in place pauses the workspace in the new lifecycle state ``restoring``, which, like ``hibernated``,
remembers the state to resume in ``resume_state``.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 05:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

CHECK = "ck_workspaces_resume_state_iff_hibernated"
OLD_CONDITION = "(lifecycle_state = 'hibernated') = (resume_state IS NOT NULL)"
NEW_CONDITION = "(lifecycle_state IN ('hibernated', 'restoring')) = (resume_state IS NOT NULL)"


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute("ALTER TYPE lifecycle ADD VALUE IF NOT EXISTS 'restoring' AFTER 'hibernated'")
    op.drop_constraint(op.f(CHECK), "workspaces", type_="check")
    op.create_check_constraint(op.f(CHECK), "workspaces", NEW_CONDITION)
    op.create_table(
        "workspace_backups",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.Enum("scheduled", "manual", "final", name="backup_kind"), nullable=False),
        sa.Column(
            "state",
            sa.Enum("queued", "running", "completed", "failed", "expired", name="backup_state"),
            nullable=False,
        ),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("parts", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("posts", sa.BigInteger(), nullable=True),
        sa.Column("files", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column("keep_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_workspace_backups_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_workspace_backups_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workspace_backups")),
    )
    op.create_index(
        "ix_workspace_backups_workspace_created", "workspace_backups", ["workspace_id", "created_at"], unique=False
    )
    op.create_index("ix_workspace_backups_keep_until", "workspace_backups", ["keep_until"], unique=False)
    op.create_table(
        "workspace_restores",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("backup_id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("source_workspace_id", sa.Uuid(), nullable=False),
        sa.Column("target_workspace_id", sa.Uuid(), nullable=False),
        sa.Column("mode", sa.Enum("clone", "in_place", name="restore_mode"), nullable=False),
        sa.Column("state", sa.Enum("queued", "running", "completed", "failed", name="restore_state"), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["backup_id"],
            ["workspace_backups.id"],
            name=op.f("fk_workspace_restores_backup_id_workspace_backups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_workspace_restores_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["source_workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_workspace_restores_source_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["target_workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_workspace_restores_target_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workspace_restores")),
    )
    op.create_index(
        "ix_workspace_restores_target_created",
        "workspace_restores",
        ["target_workspace_id", "created_at"],
        unique=False,
    )
    op.create_index(
        "uq_workspace_restores_open_target",
        "workspace_restores",
        ["target_workspace_id"],
        unique=True,
        postgresql_where=sa.text("state IN ('queued', 'running')"),
    )


def downgrade() -> None:
    op.drop_index("uq_workspace_restores_open_target", table_name="workspace_restores")
    op.drop_index("ix_workspace_restores_target_created", table_name="workspace_restores")
    op.drop_table("workspace_restores")
    op.drop_index("ix_workspace_backups_keep_until", table_name="workspace_backups")
    op.drop_index("ix_workspace_backups_workspace_created", table_name="workspace_backups")
    op.drop_table("workspace_backups")
    for name in ("restore_state", "restore_mode", "backup_state", "backup_kind"):
        sa.Enum(name=name).drop(op.get_bind(), checkfirst=True)
    # PostgreSQL cannot drop an enum value: a workspace still restoring blocks the downgrade by the constraint.
    op.drop_constraint(op.f(CHECK), "workspaces", type_="check")
    op.create_check_constraint(op.f(CHECK), "workspaces", OLD_CONDITION)
