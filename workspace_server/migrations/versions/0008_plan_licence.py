"""An Enterprise workspace's licence in its plan (``PUT /api/v4/canopy/plan`` ``licence``): nullable columns of
``workspace_plan``, all set or all NULL.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("licence_sku", sa.String(16)),
    ("licence_company", sa.String(256)),
    ("licence_users", sa.Integer()),
    ("licence_starts_at", sa.BigInteger()),
    ("licence_expires_at", sa.BigInteger()),
    ("licence_grace_ends_at", sa.BigInteger()),
    ("licence_read_only", sa.Boolean()),
)


def upgrade() -> None:
    for name, type_ in _COLUMNS:
        op.add_column("workspace_plan", sa.Column(name, type_, nullable=True))
    op.create_check_constraint(
        "ck_workspace_plan_licence",
        "workspace_plan",
        f"num_nulls({', '.join(name for name, _ in _COLUMNS)}) IN (0, 7)",
    )


def downgrade() -> None:
    op.drop_constraint("ck_workspace_plan_licence", "workspace_plan", type_="check")
    for name, _ in reversed(_COLUMNS):
        op.drop_column("workspace_plan", name)
