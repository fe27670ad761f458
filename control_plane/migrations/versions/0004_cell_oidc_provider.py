"""cell oidc provider

The IAM OIDC provider of each cell's shared EKS cluster: the workspaces' pod roles trust it (EKS IAM roles for
service accounts). Cells registered before this revision get '' (the server default): the identity step of their
pooled workspaces fails naming the cell until an operator fills the column in from the cell stack's new
``oidc_provider_arn`` output (the cell program exports it from this release on).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 02:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("cells", sa.Column("oidc_provider_arn", sa.String(length=300), server_default="", nullable=False))


def downgrade() -> None:
    op.drop_column("cells", "oidc_provider_arn")
