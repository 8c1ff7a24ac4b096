"""Grants for the runtime role: exactly what tenant sessions need, nothing that bypasses RLS."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import Connection, text

from tenancy.errors import ConfigurationError
from tenancy.models import TENANT_COLUMN
from tenancy.postgres.binding import CHECK_SIGNATURE, FUNCTION, REGISTER_FUNCTION, SCHEMA
from tenancy.postgres.citus import has_citus, set_propagation
from tenancy.postgres.timeouts import set_role_timeouts

__all__ = ["grant_runtime_role", "runtime_role_statements", "tenant_tables"]


def tenant_tables(
    connection: Connection, schema: str, *, include_tenants: bool = False, include_partitions: bool = False
) -> list[str]:
    """The tenant tables of *schema*: tables with an ``instance_id`` column (``tenants`` only when
    *include_tenants*; partitions, which the runtime role reaches through their parent, only
    when *include_partitions*)."""
    names = _relations(connection, schema, ("r", "p"), tenant_only=True, partitions=include_partitions)
    return [name for name in names if include_tenants or name != "tenants"]


def _relations(
    connection: Connection, schema: str, kinds: Sequence[str], *, tenant_only: bool, partitions: bool
) -> list[str]:
    return list(
        connection.execute(
            text(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = :s AND c.relkind = ANY(:k) AND (:p OR NOT c.relispartition)"
                " AND (NOT :t OR EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid"
                "      AND a.attname = :col AND NOT a.attisdropped)) ORDER BY 1"
            ),
            {"s": schema, "k": list(kinds), "p": partitions, "t": tenant_only, "col": TENANT_COLUMN},
        ).scalars()
    )


def _serial_sequences(connection: Connection, schema: str, tables: Sequence[str]) -> list[str]:
    # Sequences behind `serial` defaults of tenant tables (nextval() needs USAGE). Identity
    # columns need no sequence privilege at all, and SELECT on a sequence would show every
    # tenant's insert count (last_value), so nothing else is granted.
    return list(
        connection.execute(
            text(
                "SELECT s.relname FROM pg_depend d JOIN pg_class s ON s.oid = d.objid"
                " JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace n ON n.oid = t.relnamespace"
                " WHERE s.relkind = 'S' AND d.deptype = 'a' AND d.classid = 'pg_class'::regclass"
                " AND n.nspname = :s AND t.relname = ANY(:t) ORDER BY 1"
            ),
            {"s": schema, "t": list(tables)},
        ).scalars()
    )


def runtime_role_statements(
    role: str,
    *,
    owner: str,
    schema: str = "public",
    tables: Sequence[str] = (),
    sequences: Sequence[str] = (),
    has_tenants: bool = True,
    has_binding: bool = True,
    has_check: bool = True,
    also: Sequence[str] = (),
) -> list[str]:
    """The SQL that gives *role* what tenant sessions need in *schema*, and takes the rest.

    Tenant *tables* get SELECT/INSERT/UPDATE/DELETE (RLS limits each to the session's tenant);
    ``tenants`` gets SELECT only (RLS: its own row; registration goes through
    ``tenancy.register_tenant``); the tables named in *also* get DML too; *sequences* (behind
    ``serial`` columns) get USAGE. Everything else granted before is revoked: other tables,
    sequences, default privileges, and TEMP on the database.
    """
    q = _ident
    r, o, s = q(role), q(owner), q(schema)
    statements = [
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {s} FROM {r}",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {s} FROM {r}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {o} IN SCHEMA {s} REVOKE ALL ON TABLES FROM {r}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {o} IN SCHEMA {s} REVOKE ALL ON SEQUENCES FROM {r}",
        f"GRANT USAGE ON SCHEMA {s} TO {r}",
    ]
    if has_binding:
        statements += [
            f"GRANT USAGE ON SCHEMA {SCHEMA} TO {r}",
            f"GRANT EXECUTE ON FUNCTION {FUNCTION}() TO {r}",
        ]
        if has_check:  # (before its migration, a database has only the verification function)
            statements.append(f"GRANT EXECUTE ON FUNCTION {CHECK_SIGNATURE} TO {r}")
    statements += [
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {s}.{q(t)} TO {r}" for t in [*tables, *also]
    ]
    statements += [f"GRANT USAGE ON SEQUENCE {s}.{q(seq)} TO {r}" for seq in sequences]
    if has_tenants:
        statements.append(f"GRANT SELECT ON TABLE {s}.tenants TO {r}")
        if has_binding:
            statements.append(f"GRANT EXECUTE ON FUNCTION {REGISTER_FUNCTION}(text, text) TO {r}")
    return statements


def temp_statements(role: str, database: str) -> list[str]:
    """Revoke TEMP (temporary tables outlive a checkout and shadow tenant tables via pg_temp) and
    CREATE on the database (a schema named like the role comes first on the default search_path,
    ``"$user", public``: a place to plant functions and operators for later checkouts)."""
    return [
        f"REVOKE {privilege} ON DATABASE {_ident(database)} FROM {grantee}"
        for privilege in ("TEMPORARY", "CREATE")
        for grantee in ("PUBLIC", _ident(role))
    ]


def schema_statements(role: str, schema: str) -> list[str]:
    """Revoke CREATE on *schema*: a function or operator the runtime role made there would
    outlive a checkout, and one that matches better than the built-in (``=`` for ``varchar``, a
    function of the exact argument types) runs inside the next tenant's transaction."""
    return [
        f"REVOKE CREATE ON SCHEMA {_ident(schema)} FROM PUBLIC",
        f"REVOKE CREATE ON SCHEMA {_ident(schema)} FROM {_ident(role)}",
    ]


def _ident(name: str) -> str:
    if not name or len(name) > 63 or "\x00" in name:
        raise ConfigurationError(f"not a usable role or schema name: {name!r}")
    return '"' + name.replace('"', '""') + '"'


def grant_runtime_role(
    connection: Connection,
    role: str,
    *,
    schema: str = "public",
    also: Sequence[str] = (),
    timeouts: Mapping[str, str] | None = None,
) -> list[str]:
    """Grant *role* what tenant sessions need, as the tables' owner (the current user).

    Refuses a role that would skip row-level security: a superuser, a BYPASSRLS role or the
    owner itself. On Citus it also makes ``SET LOCAL`` reach the shards for *role*
    (:func:`tenancy.postgres.citus.set_propagation`). Revoking TEMP needs the database's owner:
    when the current user cannot, it
    raises :class:`~tenancy.ConfigurationError` naming the statement to run.

    It also gives *role* ``lock_timeout``, ``statement_timeout`` and
    ``idle_in_transaction_session_timeout`` as role-level defaults: the values in *timeouts*,
    and :data:`~tenancy.postgres.timeouts.DEFAULT_TIMEOUTS` for those the role has none of. Setting
    another role's defaults needs CREATEROLE; the ``ALTER ROLE`` statements the current user
    may not run are returned (empty when all are in force), to run as the role itself
    (``ALTER ROLE CURRENT_USER SET ...``, what ``tenancy grant`` does) or as a superuser.
    """
    if connection.dialect.name != "postgresql":
        raise ConfigurationError("database roles need PostgreSQL")
    row = connection.execute(
        text("SELECT rolsuper, rolbypassrls, rolname = current_user FROM pg_roles WHERE rolname = :r"),
        {"r": role},
    ).one_or_none()
    if row is None:
        raise ConfigurationError(f"role {role!r} does not exist; CREATE ROLE it first")
    if any(row):
        raise ConfigurationError(
            f"role {role!r} would bypass row-level security (superuser, BYPASSRLS or the owner); "
            "use a plain LOGIN role for the runtime connection"
        )
    owner, database = connection.execute(text("SELECT current_user, current_database()")).one()
    has_tenants = connection.execute(
        text("SELECT to_regclass(:t) IS NOT NULL"), {"t": f"{schema}.tenants"}
    ).scalar_one()
    # A database that tenancy's migration has not reached yet has no tenancy schema to grant.
    has_binding = connection.execute(
        text("SELECT to_regprocedure(:f) IS NOT NULL AND (NOT :t OR to_regprocedure(:g) IS NOT NULL)"),
        {"f": f"{FUNCTION}()", "g": f"{REGISTER_FUNCTION}(text, text)", "t": has_tenants},
    ).scalar_one()
    tables = tenant_tables(connection, schema)
    missing = [t for t in also if t not in _all_tables(connection, schema)]
    if missing:
        raise ConfigurationError(f"no such table in schema {schema!r}: {', '.join(missing)}")
    statements = runtime_role_statements(
        role,
        owner=owner,
        schema=schema,
        tables=tables,
        sequences=_serial_sequences(connection, schema, tables),
        has_tenants=has_tenants,
        has_binding=has_binding,
        has_check=bool(
            connection.execute(
                text("SELECT to_regprocedure(:f) IS NOT NULL"), {"f": CHECK_SIGNATURE}
            ).scalar_one()
        ),
        also=also,
    )
    for statement in statements:
        connection.execute(text(statement))
    for statement in temp_statements(role, database):
        savepoint = connection.begin_nested()
        try:
            connection.execute(text(statement))
        except Exception:
            savepoint.rollback()
            raise ConfigurationError(
                f"could not revoke TEMP or CREATE on the database (only its owner can): run `{statement}`"
                " as the owner"
            ) from None
        savepoint.commit()
    # PostgreSQL 14 and older (and databases upgraded from them) let PUBLIC create in `public`.
    # Only the schema's owner can revoke it; anyone else gets a warning and nothing changes.
    for statement in schema_statements(role, schema):
        connection.execute(text(statement))
    if connection.execute(
        text("SELECT has_schema_privilege(:r, :s, 'CREATE')"), {"r": role, "s": schema}
    ).scalar_one():
        raise ConfigurationError(
            f"role {role!r} can still CREATE in schema {schema!r} (only the schema's owner can revoke "
            f"it): run `{schema_statements(role, schema)[0]}` as its owner, and revoke it from any "
            f"role {role!r} is a member of"
        )
    if has_citus(connection):
        set_propagation(connection, role, _ident(role))
    return set_role_timeouts(connection, role, _ident(role), timeouts)


def _all_tables(connection: Connection, schema: str) -> set[str]:
    return set(_relations(connection, schema, ("r", "p", "v", "m"), tenant_only=False, partitions=True))
