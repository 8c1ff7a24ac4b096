"""Grants for the runtime role: exactly what tenant sessions need, nothing that bypasses RLS."""

from __future__ import annotations

from sqlalchemy import Connection, text

from tenancy.db.citus import has_citus, set_propagation
from tenancy.errors import ConfigurationError

__all__ = ["grant_runtime_role", "runtime_role_statements"]


def runtime_role_statements(role: str, *, owner: str, schema: str = "public") -> list[str]:
    """The SQL that lets *role* use the tenant tables that *owner* has and will create.

    Tenant tables get SELECT/INSERT/UPDATE/DELETE (RLS limits each to the session's tenant);
    ``tenants`` gets SELECT, INSERT and UPDATE (a token may register or reactivate its own
    tenant); ``alembic_version`` nothing. Default privileges give tables that later
    migrations create the same grants.
    """
    q = _ident
    r, o, s = q(role), q(owner), q(schema)
    return [
        f"GRANT USAGE ON SCHEMA {s} TO {r}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {r}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {s} TO {r}",
        f"REVOKE ALL ON TABLE {s}.alembic_version FROM {r}",
        f"REVOKE DELETE ON TABLE {s}.tenants FROM {r}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {o} IN SCHEMA {s} "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {r}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {o} IN SCHEMA {s} GRANT USAGE, SELECT ON SEQUENCES TO {r}",
    ]


def _ident(name: str) -> str:
    if not name or len(name) > 63 or "\x00" in name:
        raise ConfigurationError(f"not a usable role or schema name: {name!r}")
    return '"' + name.replace('"', '""') + '"'


def grant_runtime_role(connection: Connection, role: str, *, schema: str = "public") -> None:
    """Grant *role* what tenant sessions need, as the tables' owner (the current user).

    Refuses a role that would skip row-level security: a superuser, a BYPASSRLS role or the
    owner itself. On Citus it also makes ``SET LOCAL`` reach the shards for *role*
    (:func:`tenancy.db.citus.set_propagation`).
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
    owner = connection.execute(text("SELECT current_user")).scalar_one()
    has_version = connection.execute(
        text("SELECT to_regclass(:t) IS NOT NULL"), {"t": f"{schema}.alembic_version"}
    ).scalar_one()
    has_tenants = connection.execute(
        text("SELECT to_regclass(:t) IS NOT NULL"), {"t": f"{schema}.tenants"}
    ).scalar_one()
    for statement in runtime_role_statements(role, owner=owner, schema=schema):
        if "alembic_version" in statement and not has_version:
            continue
        if ".tenants " in statement and not has_tenants:
            continue
        connection.execute(text(statement))
    if has_citus(connection):
        set_propagation(connection, role, _ident(role))
