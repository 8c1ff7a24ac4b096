"""PostgreSQL row-level security for tenant tables.

Every tenant table gets RLS ENABLEd and FORCEd (so the owner is subject to it too) and one
policy whose ``USING`` and ``WITH CHECK`` compare ``instance_id`` with the *verified* tenant,
``(SELECT tenancy.current_instance_id())`` (:mod:`tenancy.postgres.binding`): the transaction-local
setting ``tenancy.instance_id`` counts only with a seal the database can verify. No setting,
a malformed one or a seal that does not verify means zero rows and rejected writes, never an
error and never all rows. The sub-select makes the check an InitPlan: once per statement,
not once per row. Citus refuses sub-selects in the policies of distributed tables: on a
database with Citus the predicate calls the function directly (:data:`CITUS_PREDICATE_SQL`).
"""

from __future__ import annotations

import warnings
from typing import Any

from sqlalchemy import Connection, Table, event, text

from tenancy.errors import TenancyWarning
from tenancy.models import TENANT_COLUMN, is_tenant_table, on_tenant_table
from tenancy.postgres.binding import FUNCTION, ensure_binding_objects

__all__ = [
    "CITUS_PREDICATE_SQL",
    "POLICY_NAME",
    "SETTING_NAME",
    "TENANT_PREDICATE_SQL",
    "disable_isolation",
    "enable_isolation",
    "has_citus",
    "isolation_statements",
    "runtime_roles",
    "sealed_predicate",
    "warn_without_rls",
]

SETTING_NAME = "tenancy.instance_id"
POLICY_NAME = "tenancy_tenant_isolation"
TENANT_PREDICATE_SQL = f"{TENANT_COLUMN} = (SELECT {FUNCTION}())"
# Citus: no sub-select in a distributed table's policy. The function is STABLE: evaluated once
# for an index lookup by instance_id (every ORM query), once per row on a scan.
CITUS_PREDICATE_SQL = f"{TENANT_COLUMN} = {FUNCTION}()"


def has_citus(connection: Connection) -> bool:
    """Whether the connected PostgreSQL database has the Citus extension."""
    if connection.dialect.name != "postgresql":
        return False
    query = text("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')")
    return bool(connection.execute(query).scalar())


def sealed_predicate(connection: Connection) -> str:
    """The sealed policy predicate for this database (:data:`CITUS_PREDICATE_SQL` on Citus)."""
    return CITUS_PREDICATE_SQL if has_citus(connection) else TENANT_PREDICATE_SQL


def _quote(connection: Connection, name: str) -> str:
    preparer = connection.dialect.identifier_preparer
    if "." in name:
        schema, table = name.split(".", 1)
        return f"{preparer.quote_schema(schema)}.{preparer.quote(table)}"
    return preparer.quote(name)


def isolation_statements(qualified_table: str, *, predicate: str = TENANT_PREDICATE_SQL) -> list[str]:
    """The SQL that puts *qualified_table* (already quoted) under tenant isolation."""
    return [
        f"ALTER TABLE {qualified_table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {qualified_table} FORCE ROW LEVEL SECURITY",
        f"DROP POLICY IF EXISTS {POLICY_NAME} ON {qualified_table}",
        f"CREATE POLICY {POLICY_NAME} ON {qualified_table} AS PERMISSIVE FOR ALL "
        f"USING ({predicate}) WITH CHECK ({predicate})",
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

    Idempotent. Creates the ``tenancy`` schema's binding objects (and a first key) if they
    are missing. *table_name* may be schema-qualified (``"app.notes"``). On a database
    other than PostgreSQL it only warns (:class:`~tenancy.TenancyWarning`): there the ORM
    layer is the only isolation.
    """
    if connection.dialect.name != "postgresql":
        warn_without_rls(connection.dialect.name, stacklevel=3)
        return
    ensure_binding_objects(connection)
    qualified = _quote(connection, table_name)
    for statement in isolation_statements(qualified, predicate=sealed_predicate(connection)):
        connection.execute(text(statement))
    for role in runtime_roles(connection):
        # The roles `tenancy grant` set up use new tenant tables at once (and only those: no
        # default privileges that would reach every future table of the schema).
        role_name = connection.dialect.identifier_preparer.quote(role)
        connection.execute(text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {qualified} TO {role_name}"))


def runtime_roles(connection: Connection) -> list[str]:
    """Roles granted EXECUTE on the verification function (by ``tenancy grant``), not its owner."""
    return list(
        connection.execute(
            text(
                "SELECT r.rolname FROM pg_proc p CROSS JOIN aclexplode(p.proacl) a"
                " JOIN pg_roles r ON r.oid = a.grantee"
                " WHERE p.oid = to_regprocedure(:f) AND a.grantee <> p.proowner"
                " AND a.privilege_type = 'EXECUTE' ORDER BY 1"
            ),
            {"f": f"{FUNCTION}()"},
        ).scalars()
    )


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


def _isolate_created_table(table: Table, connection: Connection, **kw: Any) -> None:
    # metadata.create_all() of a tenant model's table puts it under isolation right away,
    # so a table can never exist on PostgreSQL without its policy.
    if is_tenant_table(table):
        name = f"{table.schema}.{table.name}" if table.schema else table.name
        if connection.dialect.name == "postgresql":
            enable_isolation(connection, name)


def _listen_for_create(table: Table) -> None:
    # On the tenant table itself, not on the Table class: other tables (and other libraries'
    # metadata) get no listener from tenancy. propagate=True: Table.to_metadata() copies (which
    # keep the tenant-table mark) carry it along.
    if not event.contains(table, "after_create", _isolate_created_table):
        event.listen(table, "after_create", _isolate_created_table, propagate=True)


on_tenant_table(_listen_for_create)
