"""workspace resume state

Hibernation remembers the state it paused (trialing, active or suspended) so that waking returns to it: a trial
stays a trial and a suspension is not lifted by a hibernate-and-wake. The column is set exactly while a workspace is
hibernated (a check constraint says so). Workspaces hibernated before this revision could only wake to ``active``;
they get ``active``.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 23:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

LIFECYCLE = postgresql.ENUM(name="lifecycle", create_type=False)
CHECK = "ck_workspaces_resume_state_iff_hibernated"
CONDITION = "(lifecycle_state = 'hibernated') = (resume_state IS NOT NULL)"


def upgrade() -> None:
    op.add_column("workspaces", sa.Column("resume_state", LIFECYCLE, nullable=True))
    op.execute("UPDATE workspaces SET resume_state = 'active' WHERE lifecycle_state = 'hibernated'")
    op.create_check_constraint(op.f(CHECK), "workspaces", CONDITION)


def downgrade() -> None:
    op.drop_constraint(op.f(CHECK), "workspaces", type_="check")
    op.drop_column("workspaces", "resume_state")
