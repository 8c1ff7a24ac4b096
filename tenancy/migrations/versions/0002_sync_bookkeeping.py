"""Sync bookkeeping: consecutive token refusals, and an index for claiming oldest first.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A constant server default: PostgreSQL adds the column without rewriting the table,
    # and SQLite can ADD COLUMN ... NOT NULL with it.
    op.add_column(
        "tenants",
        sa.Column("consecutive_refusals", sa.Integer(), server_default="0", nullable=False),
    )
    op.create_index(op.f("ix_tenants_last_synced_at"), "tenants", ["last_synced_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_tenants_last_synced_at"), table_name="tenants")
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("consecutive_refusals")
