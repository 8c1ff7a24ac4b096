"""Sealed tenant binding: the ``tenancy`` schema (binding key, verification function,
registration function) and every tenancy policy re-created in the sealed form.

The database then trusts ``tenancy.instance_id`` only together with a seal (HMAC-SHA256 under
a random key the runtime role cannot read). Run ``tenancy grant`` afterwards (``env.py`` does
when ``TENANCY_RUNTIME_ROLE`` is set): the runtime role needs EXECUTE on the new functions.
On SQLite there is no row-level security: nothing to do.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

from tenancy.postgres.binding import add_key, binding_objects_sql, drop_binding_objects_sql
from tenancy.postgres.isolation import LEGACY_PREDICATE_SQL, TENANT_PREDICATE_SQL, reseal_policies

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    tenants_schema = bind.execute(
        text(
            "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.oid = to_regclass('tenants')"
        )
    ).scalar_one_or_none()
    for statement in binding_objects_sql(tenants_schema=tenants_schema):
        bind.execute(text(statement))
    if not bind.execute(text("SELECT EXISTS (SELECT 1 FROM tenancy.binding_keys)")).scalar_one():
        add_key(bind)
    reseal_policies(bind, predicate=TENANT_PREDICATE_SQL)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    reseal_policies(bind, predicate=LEGACY_PREDICATE_SQL)
    for statement in drop_binding_objects_sql():
        bind.execute(text(statement))
