"""delayed deletion

Deleting a workspace schedules it: ``pending_deletion`` from ``deletion_requested_at`` until ``purge_after`` (30
days, 7 for a trial), with the state it left in ``resume_state`` so that cancelling returns there. The check
constraint on ``resume_state`` now covers every pause (hibernated, restoring, pending deletion). Workspaces already
pending deletion were headed for an immediate teardown: they keep it (``purge_after`` = now) and would cancel to
``active``.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 04:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

CHECK = "ck_workspaces_resume_state_iff_hibernated"
PAUSED = "(lifecycle_state IN ('hibernated', 'restoring', 'pending_deletion')) = (resume_state IS NOT NULL)"
BEFORE = "(lifecycle_state IN ('hibernated', 'restoring')) = (resume_state IS NOT NULL)"  # as 0011 left it


def upgrade() -> None:
    op.add_column("workspaces", sa.Column("deletion_requested_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("workspaces", sa.Column("purge_after", sa.DateTime(timezone=True), nullable=True))
    op.drop_constraint(op.f(CHECK), "workspaces", type_="check")
    op.execute(
        "UPDATE workspaces SET deletion_requested_at = updated_at, purge_after = now(), resume_state = 'active' "
        "WHERE lifecycle_state = 'pending_deletion'"
    )
    op.create_check_constraint(op.f(CHECK), "workspaces", PAUSED)


def downgrade() -> None:
    op.drop_constraint(op.f(CHECK), "workspaces", type_="check")
    op.execute("UPDATE workspaces SET resume_state = NULL WHERE lifecycle_state = 'pending_deletion'")
    op.create_check_constraint(op.f(CHECK), "workspaces", BEFORE)
    op.drop_column("workspaces", "purge_after")
    op.drop_column("workspaces", "deletion_requested_at")
