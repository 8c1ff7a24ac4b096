"""On Citus: the binding key on every node, and ``tenants`` distributed by ``instance_id``.

The key table becomes a reference table and ``tenancy.current_instance_id()`` checks the
Citus form of the seal (``tenancy/postgres/citus_binding.py``); ``tenants`` becomes the co-location
group of tenant tables. A no-op on plain PostgreSQL and SQLite. Tenant tables created
afterwards are distributed co-located with it (``op.distribute_tenant_table``, emitted by
autogenerate on Citus).
Why distributed and not a reference table: see ``tenancy/postgres/citus.py``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from tenancy.postgres.citus import has_citus
from tenancy.postgres.citus_binding import prepare_binding

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if has_citus(op.get_bind()):
        prepare_binding(op.get_bind())
    op.distribute_tenant_table("tenants")  # type: ignore[attr-defined]  # registered by tenancy


def downgrade() -> None:
    op.undistribute_tenant_table("tenants")  # type: ignore[attr-defined]
