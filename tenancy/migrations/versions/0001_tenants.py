"""The tenants table, under tenant isolation.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("tenancy",)
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("instance_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="active", nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=True),
        sa.Column("site_display_name", sa.Text(), nullable=True),
        sa.Column("site_url", sa.Text(), nullable=True),
        sa.Column("locale", sa.String(length=32), nullable=True),
        sa.Column("payment_currency", sa.String(length=8), nullable=True),
        sa.Column("time_zone", sa.String(length=64), nullable=True),
        sa.Column("app_version", sa.String(length=64), nullable=True),
        sa.Column("is_free", sa.Boolean(), nullable=True),
        sa.Column("billing_package_name", sa.String(length=128), nullable=True),
        sa.Column("billing_cycle", sa.String(length=32), nullable=True),
        sa.Column("billing_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("billing_auto_renewing", sa.Boolean(), nullable=True),
        sa.Column("free_trial_status", sa.String(length=32), nullable=True),
        sa.Column("permissions", JSONType, nullable=True),
        sa.Column("installed_wix_apps", JSONType, nullable=True),
        sa.Column("raw", JSONType, nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_sync_error", sa.Text(), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('active', 'removed')", name=op.f("ck_tenants_status")),
        sa.PrimaryKeyConstraint("instance_id", name=op.f("pk_tenants")),
    )
    op.enable_tenant_isolation("tenants")  # type: ignore[attr-defined]  # registered by tenancy


def downgrade() -> None:
    op.disable_tenant_isolation("tenants")  # type: ignore[attr-defined]
    op.drop_table("tenants")
