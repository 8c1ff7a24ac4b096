"""Webhook order and removed tenants: ``tenants.last_event_at``, and a registration that refuses
a removed tenant instead of reactivating it.

``last_event_at`` is the issue time (``iat``) of the newest Wix webhook event applied to the
row; an event older than it is ignored (Wix delivers late, out of order and twice).
``tenancy.register_tenant`` (re-created on PostgreSQL) now raises SQLSTATE ``TN001`` for a
tenant whose status is not ``active``: a token, even one cached before ``AppRemoved``, is no
evidence of a reinstall. Downgrading drops the column and keeps the stricter function.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import text

from tenancy.db.binding import REGISTER_FUNCTION, register_function_sql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: PostgreSQL adds the column without rewriting the table.
    op.add_column("tenants", sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=True))
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    exists = bind.execute(
        text("SELECT to_regprocedure(:f) IS NOT NULL"), {"f": f"{REGISTER_FUNCTION}(text, text)"}
    ).scalar_one()
    tenants_schema = bind.execute(
        text(
            "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.oid = to_regclass('tenants')"
        )
    ).scalar_one_or_none()
    if exists and tenants_schema is not None:
        for statement in register_function_sql(tenants_schema):
            bind.execute(text(statement))


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("last_event_at")
