"""releases and rollouts

The release catalogue (``releases``), rollouts and their per-workspace targets, and per workspace: an operator's
release pin (its reason), the schema revision its server reports, and its maintenance window.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 11:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

RELEASE_STATE = postgresql.ENUM("candidate", "stable", "revoked", name="release_state", create_type=False)
ROLLOUT_STATE = postgresql.ENUM(
    "running", "paused", "completed", "aborted", "rolled_back", name="rollout_state", create_type=False
)
TARGET_STATE = postgresql.ENUM(
    "pending",
    "upgrading",
    "soaking",
    "succeeded",
    "failed",
    "rolling_back",
    "rolled_back",
    "skipped",
    name="rollout_target_state",
    create_type=False,
)


def upgrade() -> None:
    for enum in (RELEASE_STATE, ROLLOUT_STATE, TARGET_STATE):
        enum.create(op.get_bind(), checkfirst=True)
    op.create_table(
        "releases",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("version", sa.String(50), nullable=False, unique=True),
        sa.Column("image", sa.String(300), nullable=False),
        sa.Column("local_command", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column("schema_min", sa.Integer(), nullable=False),
        sa.Column("schema_max", sa.Integer(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("state", RELEASE_STATE, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "release_version", sa.String(50), sa.ForeignKey("releases.version", ondelete="RESTRICT"), nullable=False
        ),
        sa.Column("selector", postgresql.JSONB(), nullable=False),
        sa.Column("plan", postgresql.JSONB(), nullable=False),
        sa.Column("state", ROLLOUT_STATE, nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("resumed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_rollouts_state", "rollouts", ["state"])
    op.create_table(
        "rollout_targets",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("rollout_id", sa.Uuid(), sa.ForeignKey("rollouts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("cell", sa.String(100), nullable=False),
        sa.Column("wave", sa.Integer(), nullable=False),
        sa.Column("from_release", sa.String(50), nullable=False),
        sa.Column("state", TARGET_STATE, nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("baseline", postgresql.JSONB(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("soak_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("upgrades", sa.Integer(), nullable=False),
        sa.UniqueConstraint("rollout_id", "workspace_id", name="uq_rollout_targets_workspace"),
    )
    op.create_index("ix_rollout_targets_progress", "rollout_targets", ["rollout_id", "wave", "state"])
    op.create_index(
        "uq_rollout_targets_in_flight",
        "rollout_targets",
        ["workspace_id"],
        unique=True,
        postgresql_where=sa.text("state IN ('upgrading', 'soaking', 'rolling_back')"),
    )
    op.add_column("workspaces", sa.Column("release_pin_reason", sa.Text(), nullable=True))
    op.add_column("workspaces", sa.Column("schema_revision", sa.Integer(), nullable=True))
    op.add_column("workspaces", sa.Column("maintenance_window", postgresql.JSONB(), nullable=True))


def downgrade() -> None:
    for column in ("maintenance_window", "schema_revision", "release_pin_reason"):
        op.drop_column("workspaces", column)
    op.drop_table("rollout_targets")
    op.drop_table("rollouts")
    op.drop_table("releases")
    for enum in (TARGET_STATE, ROLLOUT_STATE, RELEASE_STATE):
        enum.drop(op.get_bind(), checkfirst=True)
