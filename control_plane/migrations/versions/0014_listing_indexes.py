"""listing indexes

The workspace and audit lists at fleet size (100,000 workspaces, 1,000,000 audit entries): every filter reads an
index in page order (workspaces: ``(column, created_at, id)``; audit: ``(column, id)``), the slug search a trigram
GIN index (the ``pg_trgm`` extension, shipped with PostgreSQL's contrib and trusted, so the database owner may
create it), the audit time range an ``occurred_at`` index. The single-column indexes the composite ones lead with
are dropped.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 05:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

WORKSPACE_ORDERED = {
    "ix_workspaces_created": [],
    "ix_workspaces_state_created": ["lifecycle_state"],
    "ix_workspaces_tier_created": ["tier"],
    "ix_workspaces_cell_created": ["cell"],
    "ix_workspaces_desired_release_created": ["desired_release"],
    "ix_workspaces_observed_release_created": ["observed_release"],
}
AUDIT_ORDERED = {
    "ix_audit_entries_org_id": "organization_id",
    "ix_audit_entries_target_id": "target_id",
    "ix_audit_entries_target_type_id": "target_type",
    "ix_audit_entries_action_id": "action",
    "ix_audit_entries_actor_id": "actor",
}


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.drop_index("ix_workspaces_lifecycle_state", table_name="workspaces")
    for name, leading in WORKSPACE_ORDERED.items():
        op.create_index(name, "workspaces", [*leading, "created_at", "id"])
    op.create_index(
        "ix_workspaces_slug_trgm",
        "workspaces",
        ["slug"],
        postgresql_using="gin",
        postgresql_ops={"slug": "gin_trgm_ops"},
    )
    op.drop_index("ix_audit_entries_organization_id", table_name="audit_entries")
    op.drop_index("ix_audit_entries_target_id", table_name="audit_entries")
    for name, column in AUDIT_ORDERED.items():
        op.create_index(name, "audit_entries", [column, "id"])
    op.create_index("ix_audit_entries_occurred_at", "audit_entries", ["occurred_at"])


def downgrade() -> None:
    op.drop_index("ix_audit_entries_occurred_at", table_name="audit_entries")
    for name in AUDIT_ORDERED:
        op.drop_index(name, table_name="audit_entries")
    op.create_index("ix_audit_entries_target_id", "audit_entries", ["target_id"])
    op.create_index("ix_audit_entries_organization_id", "audit_entries", ["organization_id"])
    op.drop_index("ix_workspaces_slug_trgm", table_name="workspaces")
    for name in WORKSPACE_ORDERED:
        op.drop_index(name, table_name="workspaces")
    op.create_index("ix_workspaces_lifecycle_state", "workspaces", ["lifecycle_state"])
