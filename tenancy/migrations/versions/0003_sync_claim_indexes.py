"""Sync claim indexes: tenants not in backoff by last sync (partial), and by next attempt.

Replaces 0002's plain index on ``last_synced_at``: failing and removed tenants keep an old
``last_synced_at``, so every claim scanned past all of them. Now each claim phase of
``tenancy.tenant_sync.store`` is one short index scan.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index(op.f("ix_tenants_last_synced_at"), table_name="tenants")
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
    op.create_index(op.f("ix_tenants_last_synced_at"), "tenants", ["last_synced_at"])
