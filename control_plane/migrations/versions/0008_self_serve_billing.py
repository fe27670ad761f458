"""self-serve billing

Subscriptions (one per Professional organization: billing status, trial, paid time, card, dunning), seat snapshots
(per workspace, daily and at billing events), invoices (one per organization and period, the exactly-once guard),
the Stripe webhook inbox (one row per event id), the billing notices sent (each once) and reconciliation reports.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 01:25:29.529119
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "billing_reconciliations",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("ran_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("organizations", sa.Integer(), nullable=False),
        sa.Column("drift", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_reconciliations")),
    )
    op.create_table(
        "stripe_events",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("object_type", sa.String(length=50), nullable=False),
        sa.Column("object_id", sa.String(length=255), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_events")),
    )
    op.create_index(
        "ix_stripe_events_unprocessed",
        "stripe_events",
        ["received_at"],
        unique=False,
        postgresql_where=sa.text("processed_at IS NULL"),
    )
    op.create_table(
        "billing_notices",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_billing_notices_organization_id_organizations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("organization_id", "key", name=op.f("pk_billing_notices")),
    )
    op.create_table(
        "invoices",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("end_day", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("lines", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("final", sa.Boolean(), nullable=False),
        sa.Column("state", sa.Enum("pending", "open", "paid", name="invoice_state"), nullable=False),
        sa.Column("gateway_invoice_id", sa.String(length=100), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_failure_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_failure", sa.Text(), nullable=True),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_invoices_organization_id_organizations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
    )
    op.create_index("ix_invoices_state", "invoices", ["state"], unique=False)
    op.create_index("ix_invoices_gateway_invoice_id", "invoices", ["gateway_invoice_id"], unique=False)
    op.create_index("uq_invoices_org_period", "invoices", ["organization_id", "period"], unique=True)
    op.create_table(
        "subscriptions",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("trialing", "active", "past_due", "unpaid", "canceled", name="billing_status"),
            nullable=False,
        ),
        sa.Column("trial_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("trial_ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paid_intervals", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("cancel_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("customer_id", sa.String(length=100), nullable=True),
        sa.Column("payment_method_id", sa.String(length=100), nullable=True),
        sa.Column("payment_method_added_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("card_brand", sa.String(length=30), nullable=True),
        sa.Column("card_last4", sa.String(length=4), nullable=True),
        sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_subscriptions_organization_id_organizations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("organization_id", name=op.f("pk_subscriptions")),
    )
    op.create_index("ix_subscriptions_next_run_at", "subscriptions", ["next_run_at"], unique=False)
    op.create_index("ix_subscriptions_customer_id", "subscriptions", ["customer_id"], unique=False)
    op.create_table(
        "seat_snapshots",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("seats", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Enum("daily", "billing_event", name="seat_snapshot_reason"), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_seat_snapshots_organization_id_organizations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_seat_snapshots_workspace_id_workspaces"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_seat_snapshots")),
    )
    op.create_index("ix_seat_snapshots_org_taken", "seat_snapshots", ["organization_id", "taken_at"], unique=False)
    op.create_index(
        "uq_seat_snapshots_daily",
        "seat_snapshots",
        ["workspace_id", "day"],
        unique=True,
        postgresql_where=sa.text("reason = 'daily'"),
    )


def downgrade() -> None:
    op.drop_index("uq_seat_snapshots_daily", table_name="seat_snapshots", postgresql_where=sa.text("reason = 'daily'"))
    op.drop_index("ix_seat_snapshots_org_taken", table_name="seat_snapshots")
    op.drop_table("seat_snapshots")
    op.drop_index("ix_subscriptions_next_run_at", table_name="subscriptions")
    op.drop_table("subscriptions")
    op.drop_index("uq_invoices_org_period", table_name="invoices")
    op.drop_index("ix_invoices_state", table_name="invoices")
    op.drop_table("invoices")
    op.drop_table("billing_notices")
    op.drop_index(
        "ix_stripe_events_unprocessed", table_name="stripe_events", postgresql_where=sa.text("processed_at IS NULL")
    )
    op.drop_table("stripe_events")
    op.drop_table("billing_reconciliations")
    for enum_type in ("billing_status", "invoice_state", "seat_snapshot_reason"):
        op.execute(f"DROP TYPE IF EXISTS {enum_type}")
