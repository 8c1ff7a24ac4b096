"""On Citus: distribute ``tenants`` by ``instance_id`` (the co-location group of tenant tables).

A no-op on plain PostgreSQL and SQLite. Tenant tables created afterwards are distributed
co-located with it (``op.distribute_tenant_table``, emitted by autogenerate on Citus).
Why distributed and not a reference table: see ``tenancy/db/citus.py``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.distribute_tenant_table("tenants")


def downgrade() -> None:
    op.undistribute_tenant_table("tenants")
