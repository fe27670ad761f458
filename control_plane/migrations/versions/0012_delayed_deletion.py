"""delayed deletion

Deleting a workspace schedules it: ``pending_deletion`` until ``purge_after`` (30 days, 7 for a trial), with the
state it left in ``resume_state`` so that cancelling returns there. The check constraint on ``resume_state`` now
covers both pauses (hibernated, pending deletion). Workspaces already pending deletion were headed for an immediate
teardown: they keep it (``purge_after`` = now) and would cancel to ``active``.

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-07 04:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0010"
branch_labels = None
depends_on = None

CHECK = "ck_workspaces_resume_state_iff_hibernated"
PAUSED = "(lifecycle_state IN ('hibernated', 'pending_deletion')) = (resume_state IS NOT NULL)"
HIBERNATED = "(lifecycle_state = 'hibernated') = (resume_state IS NOT NULL)"


def upgrade() -> None:
    op.add_column("workspaces", sa.Column("purge_after", sa.DateTime(timezone=True), nullable=True))
    op.drop_constraint(op.f(CHECK), "workspaces", type_="check")
    op.execute(
        "UPDATE workspaces SET purge_after = now(), resume_state = 'active' WHERE lifecycle_state = 'pending_deletion'"
    )
    op.create_check_constraint(op.f(CHECK), "workspaces", PAUSED)


def downgrade() -> None:
    op.drop_constraint(op.f(CHECK), "workspaces", type_="check")
    op.execute("UPDATE workspaces SET resume_state = NULL WHERE lifecycle_state = 'pending_deletion'")
    op.create_check_constraint(op.f(CHECK), "workspaces", HIBERNATED)
    op.drop_column("workspaces", "purge_after")
