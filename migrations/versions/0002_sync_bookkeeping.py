"""Sync bookkeeping: consecutive token refusals, and the indexes the sync's claims use.

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
    # Tenants not in backoff, by last sync (partial: failing and removed tenants, which
    # keep an old last_synced_at, would otherwise be scanned past by every claim).
    op.create_index(
        "ix_tenants_sync_order",
        "tenants",
        ["last_synced_at"],
        postgresql_where=sa.text("next_attempt_at IS NULL"),
        sqlite_where=sa.text("next_attempt_at IS NULL"),
    )
    op.create_index(op.f("ix_tenants_next_attempt_at"), "tenants", ["next_attempt_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_tenants_next_attempt_at"), table_name="tenants")
    op.drop_index("ix_tenants_sync_order", table_name="tenants")
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("consecutive_refusals")
