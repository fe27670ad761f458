"""workspace credentials

Each workspace's database password and control token: random, stored as Fernet ciphertext under the newest
key of CANOPY_CREDENTIAL_KEYS (key_id names it; rotation re-encrypts). Workspaces provisioned before this
revision get new random credentials on their next reconcile: the database step sets the role's new password
(it marks the role with the password's digest); servers started from then on get both (on Kubernetes the
changed Secret rolls the pods; local servers stop with ``canopy run`` and restart with the upgraded one).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 23:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workspace_credentials",
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("purpose", sa.String(length=20), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_workspace_credentials_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", "purpose", name=op.f("pk_workspace_credentials")),
    )
    op.create_index(op.f("ix_workspace_credentials_key_id"), "workspace_credentials", ["key_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_workspace_credentials_key_id"), table_name="workspace_credentials")
    op.drop_table("workspace_credentials")
