"""enterprise contracts

Enterprise contracts (``contracts``: one per organization), their annual and true-forward invoices
(``contract_invoices``, unique per contract, kind, year and quarter), the contract notices sent
(``contract_notices``), and the staff role ``finance``.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 14:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

KIND = postgresql.ENUM("annual", "true_forward", name="contract_invoice_kind", create_type=False)
STATE = postgresql.ENUM("pending", "open", "paid", name="contract_invoice_state", create_type=False)


def upgrade() -> None:
    # PostgreSQL 12+ accepts this in a transaction; the value is only used by later transactions.
    op.execute("ALTER TYPE role ADD VALUE IF NOT EXISTS 'finance'")
    for enum in (KIND, STATE):
        enum.create(op.get_bind(), checkfirst=True)
    op.create_table(
        "contracts",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "organization_id",
            sa.Uuid(),
            sa.ForeignKey("organizations.id", ondelete="RESTRICT"),
            nullable=False,
            unique=True,
        ),
        sa.Column("seats_purchased", sa.Integer(), nullable=False),
        sa.Column("annual_price_per_seat_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column("payment_terms_days", sa.Integer(), nullable=False),
        sa.Column("billing_contact_email", sa.String(320), nullable=False),
        sa.Column("billing_contact_name", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_table(
        "contract_invoices",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("contract_id", sa.Uuid(), sa.ForeignKey("contracts.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("kind", KIND, nullable=False),
        sa.Column("contract_year", sa.Integer(), nullable=False),
        sa.Column("quarter", sa.Integer(), nullable=False),
        sa.Column("seats", sa.Integer(), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("lines", postgresql.JSONB(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", STATE, nullable=False),
        sa.Column("gateway_invoice_id", sa.String(100), nullable=True),
        sa.Column("gateway_settled", sa.Boolean(), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("payment_reference", sa.String(200), nullable=True),
    )
    op.create_index(
        "uq_contract_invoices_once",
        "contract_invoices",
        ["contract_id", "kind", "contract_year", "quarter"],
        unique=True,
    )
    op.create_index("ix_contract_invoices_gateway_invoice_id", "contract_invoices", ["gateway_invoice_id"])
    op.create_table(
        "contract_notices",
        sa.Column("contract_id", sa.Uuid(), sa.ForeignKey("contracts.id", ondelete="RESTRICT"), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("contract_notices")
    op.drop_table("contract_invoices")
    op.drop_table("contracts")
    for enum in (STATE, KIND):
        enum.drop(op.get_bind(), checkfirst=True)
    # PostgreSQL cannot drop an enum value: 'finance' stays in type role (unused once no account holds it).
