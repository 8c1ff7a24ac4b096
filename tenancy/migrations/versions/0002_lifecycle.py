"""Tenant lifecycle: removal and purge times, the purge tombstone's counts, duplicated sites.

``removed_at`` starts a removed tenant's retention (rows already ``removed`` start it now);
``purge_started_at`` / ``purged_at`` / ``purge_counts`` are the purge's progress and tombstone;
``origin_instance_id`` / ``copied_from_origin_at`` the copy of a duplicated site's data.
Plain SQL on purpose: no import of tenancy, so the revision never changes with the library.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.add_column("tenants", sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("tenants", sa.Column("purge_started_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("tenants", sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("tenants", sa.Column("purge_counts", JSONType, nullable=True))
    op.add_column("tenants", sa.Column("origin_instance_id", sa.Uuid(), nullable=True))
    op.add_column("tenants", sa.Column("copied_from_origin_at", sa.DateTime(timezone=True), nullable=True))
    # Tenants removed before this revision: their retention starts now, not at an unknown past.
    op.execute(sa.text("UPDATE tenants SET removed_at = CURRENT_TIMESTAMP WHERE status = 'removed'"))


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        for name in (
            "copied_from_origin_at",
            "origin_instance_id",
            "purge_counts",
            "purged_at",
            "purge_started_at",
            "removed_at",
        ):
            batch.drop_column(name)
