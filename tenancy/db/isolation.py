"""PostgreSQL row-level security for tenant tables.

Every tenant table gets RLS ENABLEd and FORCEd (so the owner is subject to it too) and one
policy whose ``USING`` and ``WITH CHECK`` compare ``instance_id`` with the transaction-local
setting ``tenancy.instance_id``. ``current_setting(..., true)`` + ``NULLIF(..., '')`` make an
unset or empty setting mean *no tenant*: zero rows and rejected writes, never an error
and never all rows.
"""

from __future__ import annotations

import warnings
from typing import Any

from sqlalchemy import Connection, Table, event, text

from tenancy.db.models import TENANT_COLUMN, is_tenant_table
from tenancy.errors import TenancyWarning

__all__ = [
    "POLICY_NAME",
    "SETTING_NAME",
    "TENANT_PREDICATE_SQL",
    "disable_isolation",
    "enable_isolation",
    "isolation_statements",
    "warn_without_rls",
]

SETTING_NAME = "tenancy.instance_id"
POLICY_NAME = "tenancy_tenant_isolation"
TENANT_PREDICATE_SQL = f"{TENANT_COLUMN} = NULLIF(current_setting('{SETTING_NAME}', true), '')::uuid"


def _quote(connection: Connection, name: str) -> str:
    preparer = connection.dialect.identifier_preparer
    if "." in name:
        schema, table = name.split(".", 1)
        return f"{preparer.quote_schema(schema)}.{preparer.quote(table)}"
    return preparer.quote(name)


def isolation_statements(qualified_table: str) -> list[str]:
    """The SQL that puts *qualified_table* (already quoted) under tenant isolation."""
    return [
        f"ALTER TABLE {qualified_table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {qualified_table} FORCE ROW LEVEL SECURITY",
        f"DROP POLICY IF EXISTS {POLICY_NAME} ON {qualified_table}",
        f"CREATE POLICY {POLICY_NAME} ON {qualified_table} AS PERMISSIVE FOR ALL "
        f"USING ({TENANT_PREDICATE_SQL}) WITH CHECK ({TENANT_PREDICATE_SQL})",
    ]


def warn_without_rls(dialect: str, *, stacklevel: int = 3) -> None:
    """Warn (:class:`~tenancy.TenancyWarning`) that on *dialect* only the ORM layer isolates tenants."""
    if dialect != "postgresql":
        warnings.warn(
            f"row-level security needs PostgreSQL; on {dialect} only tenancy's ORM layer isolates "
            "tenants (text() and Core statements are not filtered)",
            TenancyWarning,
            stacklevel=stacklevel,
        )


def enable_isolation(connection: Connection, table_name: str) -> None:
    """ENABLE + FORCE row-level security and the tenant policy on an existing table.

    Idempotent. *table_name* may be schema-qualified (``"app.notes"``). On a database
    other than PostgreSQL it only warns (:class:`~tenancy.TenancyWarning`): there the ORM
    layer is the only isolation.
    """
    if connection.dialect.name != "postgresql":
        warn_without_rls(connection.dialect.name, stacklevel=3)
        return
    for statement in isolation_statements(_quote(connection, table_name)):
        connection.execute(text(statement))


def disable_isolation(connection: Connection, table_name: str) -> None:
    """Reverse :func:`enable_isolation`: drop the policy, NO FORCE and DISABLE RLS."""
    if connection.dialect.name != "postgresql":
        return
    qualified = _quote(connection, table_name)
    for statement in (
        f"DROP POLICY IF EXISTS {POLICY_NAME} ON {qualified}",
        f"ALTER TABLE {qualified} NO FORCE ROW LEVEL SECURITY",
        f"ALTER TABLE {qualified} DISABLE ROW LEVEL SECURITY",
    ):
        connection.execute(text(statement))


@event.listens_for(Table, "after_create")
def _isolate_created_table(table: Table, connection: Connection, **kw: Any) -> None:
    # metadata.create_all() of a tenant model's table puts it under isolation right away,
    # so a table can never exist on PostgreSQL without its policy.
    if is_tenant_table(table):
        name = f"{table.schema}.{table.name}" if table.schema else table.name
        if connection.dialect.name == "postgresql":
            enable_isolation(connection, name)
