"""``tenancy check``: audit a live PostgreSQL database for what would break isolation.

A tenant table is any table of the schema with an ``instance_id`` column. Findings:

- the runtime role is a superuser, has BYPASSRLS, owns a table, or can ``SET ROLE`` to a
  role that would skip row-level security;
- a tenant table without RLS enabled, without FORCE, without tenancy's policy, or with
  another permissive policy (permissive policies are OR-ed: one more widens access);
- a primary key, unique constraint or unique index that does not lead with ``instance_id``;
  a foreign key between tenant tables that does not carry ``instance_id``;
- a view over tenant tables that is not ``security_invoker`` (it would read as its owner);
- on Citus: a shard placement of a tenant table, read on its worker, without RLS enabled,
  forced and the coordinator's tenancy policy, or with an extra permissive policy; and
  ``citus.propagate_set_commands`` not ``'local'`` for the runtime role (tenant sessions
  would then see no rows and write none).
  a materialized view over tenant tables the runtime role can read (it never has RLS);
- a ``SECURITY DEFINER`` function the runtime role can execute whose owner skips row-level
  security (tenancy's own verification and registration functions excepted);
- a table the runtime role can read without row-level security;
- a tenancy policy that is not the sealed form (a bare setting can be forged by SQL);
- an exclusion constraint or a plain index that does not lead with ``instance_id``;
- raw-SQL footholds: TEMP or CREATE on the database, CREATE on a schema, objects the runtime role owns
  (functions, operators, types: planted while it could CREATE), role-level settings of the
  runtime role (``ALTER ROLE ... SET``, e.g. ``row_security`` or ``tenancy.*``), except the
  timeouts ``tenancy grant`` sets;
- ``lock_timeout``, ``statement_timeout`` or ``idle_in_transaction_session_timeout`` not in
  force for the runtime role, or ``0`` (:mod:`tenancy.postgres.timeouts`);
- a rule on a relation a tenant's statement reaches, and any object there (trigger, default,
  generated column, constraint, domain, index, policy, view, event trigger) or any operator or
  cast that reaches a ``SECURITY DEFINER`` function (:mod:`tenancy.postgres.owner_code`).
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from tenancy.errors import ConfigurationError
from tenancy.models import TENANT_COLUMN, TENANTS_TABLE
from tenancy.postgres import roles
from tenancy.postgres.binding import FUNCTION, REGISTER_FUNCTION, SCHEMA
from tenancy.postgres.citus import (
    PROPAGATE_SETTING,
    distributed_tables,
    has_citus,
    placement_security,
    propagation_in_force,
    setting_in_force,
)
from tenancy.postgres.findings import Finding
from tenancy.postgres.isolation import POLICY_NAME
from tenancy.postgres.owner_code import owner_code_findings
from tenancy.postgres.timeouts import DEFAULT_TIMEOUTS, is_off, timeout_statement

__all__ = ["CITUS_POLICY_TEXT", "SEALED_POLICY_TEXT", "Finding", "audit"]

_FUNCTION_NAME = FUNCTION.rsplit(".", 1)[1]
SEALED_POLICY_TEXT = f"({TENANT_COLUMN} = ( SELECT {FUNCTION}() AS {_FUNCTION_NAME}))"
"""How PostgreSQL shows the sealed predicate in ``pg_policies`` (anything else is a finding)."""
CITUS_POLICY_TEXT = f"({TENANT_COLUMN} = {FUNCTION}())"
"""The same on Citus, which refuses the sub-select in a distributed table's policy."""


def _sealed(expression: str | None, *, citus: bool = False) -> bool:
    # pg_policies omits the schema when `tenancy` is on the auditing connection's search_path.
    forms = (SEALED_POLICY_TEXT, CITUS_POLICY_TEXT) if citus else (SEALED_POLICY_TEXT,)
    return any(expression in (form, form.replace(f"{SCHEMA}.", "", 1)) for form in forms)


def audit(connection: Connection, *, runtime_role: str, schema: str = "public") -> list[Finding]:
    """Return every finding for *runtime_role* and the tenant tables of *schema* (empty = clean).

    Raises :class:`~tenancy.ConfigurationError` when there is nothing to audit: no ``tenants``
    table, or no tenant table besides it (an unmigrated database).
    """
    if connection.dialect.name != "postgresql":
        return [Finding("database", connection.dialect.name, "row-level security needs PostgreSQL")]
    tenant_tables = roles.tenant_tables(connection, schema, include_tenants=True, include_partitions=True)
    _require_migrated(schema, tenant_tables)
    findings: list[Finding] = []
    findings += _role_findings(connection, runtime_role, schema)
    findings += _rls_findings(connection, schema, tenant_tables)
    findings += _key_findings(connection, schema, tenant_tables)
    findings += _view_findings(connection, schema, tenant_tables)
    findings += _raw_sql_findings(connection, runtime_role, schema, tenant_tables)
    findings += owner_code_findings(connection, runtime_role, schema, tenant_tables)
    findings += _timeout_findings(connection, runtime_role)
    if has_citus(connection):
        findings += _citus_findings(connection, runtime_role, schema, tenant_tables)
    return findings


def _require_migrated(schema: str, tenant_tables: list[str]) -> None:
    """An unmigrated database has nothing to audit: passing it would be a false pass."""
    if TENANTS_TABLE not in tenant_tables:
        raise ConfigurationError(
            f"schema {schema!r} has no {TENANTS_TABLE} table: the database is not migrated; "
            "run `alembic upgrade heads` (README: Your own app)"
        )
    if len(tenant_tables) == 1:
        raise ConfigurationError(
            f"schema {schema!r} has no tenant tables (tables with an {TENANT_COLUMN} column) besides "
            f"{TENANTS_TABLE}: nothing of yours to audit; run `alembic upgrade heads`"
        )


def _role_findings(conn: Connection, role: str, schema: str) -> list[Finding]:
    row = conn.execute(
        text("SELECT oid, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = :r"), {"r": role}
    ).one_or_none()
    if row is None:
        return [Finding("role", role, "the runtime role does not exist")]
    oid, superuser, bypass = row
    found = []
    if superuser:
        found.append(Finding("role", role, "is a superuser: superusers skip row-level security"))
    if bypass:
        found.append(Finding("role", role, "has BYPASSRLS: it skips row-level security"))
    owned = conn.execute(
        text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = :s AND c.relowner = :o AND c.relkind IN ('r', 'p', 'v', 'm')"
            " ORDER BY 1"
        ),
        {"s": schema, "o": oid},
    ).scalars()
    for name in owned:
        found.append(Finding("role", role, f"owns {schema}.{name}: owners can disable RLS and skip it"))
    # Membership in a privileged role lets `SET ROLE` turn the runtime connection into admin.
    escalations = conn.execute(
        text(
            "SELECT r.rolname FROM pg_roles r WHERE r.oid <> :o AND pg_has_role(:o, r.oid, 'MEMBER')"
            " AND (r.rolsuper OR r.rolbypassrls OR EXISTS ("
            "   SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            "   WHERE n.nspname = :s AND c.relowner = r.oid)) ORDER BY 1"
        ),
        {"o": oid, "s": schema},
    ).scalars()
    for name in escalations:
        found.append(Finding("role", role, f"can SET ROLE {name}, which skips row-level security"))
    return found


def _rls_findings(conn: Connection, schema: str, tables: list[str]) -> list[Finding]:
    found = []
    citus = has_citus(conn)
    for table in tables:
        enabled, forced = conn.execute(
            text(
                "SELECT c.relrowsecurity, c.relforcerowsecurity FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :s AND c.relname = :t"
            ),
            {"s": schema, "t": table},
        ).one()
        subject = f"{schema}.{table}"
        if not enabled:
            found.append(Finding("rls", subject, "row-level security is not enabled"))
        if not forced:
            found.append(Finding("rls", subject, "row-level security is not forced (the owner skips it)"))
        policies = conn.execute(
            text(
                "SELECT policyname, permissive, cmd, roles::text[], qual, with_check FROM pg_policies"
                " WHERE schemaname = :s AND tablename = :t"
            ),
            {"s": schema, "t": table},
        ).all()
        ours = [p for p in policies if p.policyname == POLICY_NAME]
        if not ours:
            found.append(Finding("rls", subject, f"has no {POLICY_NAME} policy"))
        else:
            p = ours[0]
            if (
                p.cmd != "ALL"
                or p.permissive != "PERMISSIVE"
                or list(p.roles) != ["public"]
                or not _sealed(p.qual, citus=citus)
                or not _sealed(p.with_check, citus=citus)
            ):
                found.append(
                    Finding(
                        "rls",
                        subject,
                        f"{POLICY_NAME} is not the sealed policy tenancy creates "
                        "(an unsealed setting can be forged by SQL in a tenant session)",
                    )
                )
        for p in policies:
            if p.policyname != POLICY_NAME and p.permissive == "PERMISSIVE":
                found.append(
                    Finding("rls", subject, f"extra permissive policy {p.policyname!r} widens access")
                )
    return found


def _key_findings(conn: Connection, schema: str, tables: list[str]) -> list[Finding]:
    if not tables:
        return []
    rows = conn.execute(
        text(
            "SELECT rel.relname, con.conname, con.contype,"
            " (SELECT a.attname FROM pg_attribute a WHERE a.attrelid = con.conrelid"
            "   AND a.attnum = con.conkey[1]) AS first_col,"
            " ref.relname AS ref_table,"
            " (SELECT a.attname FROM pg_attribute a WHERE a.attrelid = con.confrelid"
            "   AND a.attnum = con.confkey[1]) AS first_ref_col"
            " FROM pg_constraint con JOIN pg_class rel ON rel.oid = con.conrelid"
            " JOIN pg_namespace n ON n.oid = rel.relnamespace"
            " LEFT JOIN pg_class ref ON ref.oid = con.confrelid"
            " WHERE n.nspname = :s AND con.contype IN ('p', 'u', 'f', 'x') AND rel.relname = ANY(:t)"
        ),
        {"s": schema, "t": tables},
    ).all()
    found = []
    kinds = {"p": "primary key", "u": "unique constraint", "f": "foreign key", "x": "exclusion constraint"}
    for table, name, contype, first_col, ref_table, first_ref_col in rows:
        subject = f"{schema}.{table}.{name}"
        if contype in ("p", "u", "x") and first_col != TENANT_COLUMN:
            found.append(Finding("key", subject, f"{kinds[contype]} does not lead with {TENANT_COLUMN}"))
        if (
            contype == "f"
            and ref_table in tables
            and (first_col != TENANT_COLUMN or first_ref_col != TENANT_COLUMN)
        ):
            found.append(
                Finding("key", subject, f"foreign key to {ref_table} does not carry {TENANT_COLUMN}")
            )
    unique_indexes = conn.execute(
        text(
            "SELECT t.relname, i.relname, a.attname, x.indisunique FROM pg_index x"
            " JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid"
            " JOIN pg_namespace n ON n.oid = t.relnamespace"
            " LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = x.indkey[0]"
            " LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid"
            " WHERE n.nspname = :s AND c.oid IS NULL AND t.relname = ANY(:t)"
            # tenants' own indexes serve the sync (admin role, BYPASSRLS), not tenant sessions.
            " AND (x.indisunique OR t.relname <> 'tenants')"
        ),
        {"s": schema, "t": tables},
    ).all()
    for table, index, first_col, unique in unique_indexes:
        if first_col != TENANT_COLUMN:
            kind = "unique index" if unique else "index"
            found.append(
                Finding("key", f"{schema}.{table}.{index}", f"{kind} does not lead with {TENANT_COLUMN}")
            )
    return found


def _view_findings(conn: Connection, schema: str, tables: list[str]) -> list[Finding]:
    rows = conn.execute(
        text(
            "SELECT DISTINCT v.relname, coalesce(v.reloptions, '{}') FROM pg_class v"
            " JOIN pg_namespace n ON n.oid = v.relnamespace"
            " JOIN pg_rewrite r ON r.ev_class = v.oid JOIN pg_depend d ON d.objid = r.oid"
            " JOIN pg_class t ON t.oid = d.refobjid"
            " WHERE n.nspname = :s AND v.relkind = 'v' AND t.relname = ANY(:t) AND t.oid <> v.oid"
        ),
        {"s": schema, "t": tables},
    ).all()
    return [
        Finding(
            "view", f"{schema}.{view}", "reads tenant tables but is not security_invoker (reads as its owner)"
        )
        for view, options in rows
        if "security_invoker=true" not in options and "security_invoker=on" not in options
    ]


_OFF = {"off", "false", "no", "0"}


def _citus_query_text_findings(conn: Connection, role: str) -> list[Finding]:
    # On Citus the seal travels in SET LOCAL text (only SET reaches the workers). Other backends
    # of the runtime role -- SQL injected into another tenant's session -- could read it there and
    # replay it on a later checkout of the same pooled backend, unless the role's query text is
    # never reported (README: Scaling out with Citus).
    found = []
    value = setting_in_force(conn, role, "track_activities")
    if (value or "on").lower() not in _OFF:
        found.append(
            Finding(
                "citus",
                role,
                "track_activities is on for the runtime role: other tenants' SQL could read a seal in "
                "pg_stat_activity and replay it (as a superuser: ALTER ROLE ... SET track_activities = off)",
            )
        )
    has_statements = conn.execute(
        text("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')")
    ).scalar()
    value = setting_in_force(conn, role, "pg_stat_statements.track_utility")
    if has_statements and (value or "on").lower() not in _OFF:
        found.append(
            Finding(
                "citus",
                role,
                "pg_stat_statements keeps SET statements' text (seals) for the runtime role (as a "
                "superuser: ALTER ROLE ... SET pg_stat_statements.track_utility = off)",
            )
        )
    return found


def _citus_findings(conn: Connection, role: str, schema: str, tables: list[str]) -> list[Finding]:
    found = []
    value = propagation_in_force(conn, role)
    if value != "local":
        found.append(
            Finding(
                "citus",
                role,
                f"{PROPAGATE_SETTING} is {value!r}, not 'local': SET LOCAL does not reach the shards, "
                "tenant sessions see no rows and write none (run `tenancy grant`)",
            )
        )
    found += _citus_query_text_findings(conn, role)
    citus_tables = distributed_tables(conn)
    for table in tables:
        qualified = table if schema == "public" else f"{schema}.{table}"
        if citus_tables.get(qualified) != "distributed":
            continue
        expected = conn.execute(
            text(
                "SELECT pg_get_expr(polqual, polrelid), pg_get_expr(polwithcheck, polrelid) FROM pg_policy"
                " WHERE polrelid = CAST(:t AS regclass) AND polname = :p"
            ),
            {"t": f"{schema}.{table}", "p": POLICY_NAME},
        ).one_or_none()
        for placement in placement_security(conn, f"{schema}.{table}"):
            subject = f"{schema}.{table} shard {placement.shard} on {placement.node}"
            if not placement.enabled:
                found.append(Finding("rls", subject, "row-level security is not enabled on this shard"))
            if not placement.forced:
                found.append(Finding("rls", subject, "row-level security is not forced on this shard"))
            ours = [p for p in placement.policies if p[0] == POLICY_NAME]
            if not ours:
                found.append(Finding("rls", subject, f"has no {POLICY_NAME} policy on this shard"))
            elif expected is None or ours[0][1:] != (True, "*", *expected):
                found.append(
                    Finding("rls", subject, f"{POLICY_NAME} on this shard differs from the coordinator's")
                )
            for name, permissive, *_ in placement.policies:
                if name != POLICY_NAME and permissive:
                    found.append(
                        Finding(
                            "rls", subject, f"extra permissive policy {name!r} widens access on this shard"
                        )
                    )
    return found


# Role-level settings that only narrow what SQL in a tenant session can do or see: what
# `tenancy grant` sets on Citus (SET LOCAL reaches the shards), and what hides the runtime
# role's query text (a Citus seal in `SET LOCAL` text) from its other backends.
_HARMLESS_SETTINGS = {
    PROPAGATE_SETTING: {"local"},
    "track_activities": _OFF,
    "pg_stat_statements.track_utility": _OFF,
}


def _raw_sql_findings(conn: Connection, role: str, schema: str, tables: list[str]) -> list[Finding]:
    # What SQL injected into a tenant session could use to reach other tenants (invariant 9).
    found: list[Finding] = []
    if not conn.execute(
        text("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :r)"), {"r": role}
    ).scalar():
        return found
    # tenancy's own functions are the only SECURITY DEFINER ones exempt (not its whole schema).
    params = {
        "r": role,
        "s": schema,
        "t": tables,
        "verify": f"{FUNCTION}()",
        "register": f"{REGISTER_FUNCTION}(text, text)",
    }
    for (name,) in conn.execute(
        text(
            "SELECT DISTINCT m.relname FROM pg_class m JOIN pg_namespace n ON n.oid = m.relnamespace"
            " JOIN pg_rewrite w ON w.ev_class = m.oid JOIN pg_depend d ON d.objid = w.oid"
            " JOIN pg_class t ON t.oid = d.refobjid"
            " WHERE n.nspname = :s AND m.relkind = 'm' AND t.relname = ANY(:t) AND t.oid <> m.oid"
            " AND has_table_privilege(:r, m.oid, 'SELECT') ORDER BY 1"
        ),
        params,
    ):
        found.append(
            Finding(
                "view",
                f"{schema}.{name}",
                "materialized view over tenant tables readable by the runtime role",
            )
        )
    for (name,) in conn.execute(
        text(
            "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " JOIN pg_roles o ON o.oid = p.proowner"
            " WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
            " AND p.oid NOT IN (SELECT f FROM unnest(ARRAY[to_regprocedure(:verify),"
            "   to_regprocedure(:register)]) AS f WHERE f IS NOT NULL)"
            " AND has_function_privilege(:r, p.oid, 'EXECUTE')"
            " AND (o.rolsuper OR o.rolbypassrls OR EXISTS (SELECT 1 FROM pg_class c"
            "      WHERE c.relowner = o.oid AND c.relrowsecurity)) ORDER BY 1"
        ),
        params,
    ):
        found.append(
            Finding(
                "function",
                name,
                "SECURITY DEFINER function the runtime role can call; it runs as a role that skips RLS",
            )
        )
    for (name,) in conn.execute(
        text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = :s AND c.relkind IN ('r', 'p', 'f') AND NOT c.relrowsecurity"
            " AND has_table_privilege(:r, c.oid, 'SELECT') ORDER BY 1"
        ),
        params,
    ):
        found.append(
            Finding("grant", f"{schema}.{name}", "the runtime role can read it without row-level security")
        )
    if conn.execute(text("SELECT has_database_privilege(:r, current_database(), 'TEMP')"), params).scalar():
        found.append(
            Finding("role", role, "has TEMP on the database: a temporary table can shadow a tenant table")
        )
    if conn.execute(text("SELECT has_database_privilege(:r, current_database(), 'CREATE')"), params).scalar():
        found.append(
            Finding(
                "role",
                role,
                "has CREATE on the database: a schema named like the role comes first on the default"
                " search_path",
            )
        )
    for (name,) in conn.execute(
        text(
            "SELECT n.nspname FROM pg_namespace n WHERE has_schema_privilege(:r, n.oid, 'CREATE')"
            " AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema' ORDER BY 1"
        ),
        params,
    ):
        found.append(
            Finding("role", role, f"has CREATE on schema {name}: objects it creates outlive a checkout")
        )
    # What SQL in a tenant session planted while it could CREATE somewhere (revoking CREATE
    # later leaves it there): a function or operator that matches better than a built-in runs
    # inside other tenants' transactions, with their binding. Large objects are listed in the
    # README's limits instead (every tenant's share the runtime role's ownership).
    for (description,) in conn.execute(
        text(
            "SELECT pg_describe_object(d.classid, d.objid, 0) FROM pg_shdepend d"
            " JOIN pg_roles r ON r.oid = d.refobjid"
            " WHERE r.rolname = :r AND d.deptype = 'o'"
            " AND d.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND d.classid <> 'pg_largeobject'::regclass"
            " AND NOT (d.classid = 'pg_class'::regclass AND d.objid IN (SELECT c.oid FROM pg_class c"
            "   JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :s))"
            " ORDER BY 1"
        ),
        params,
    ):
        found.append(
            Finding(
                "role",
                role,
                f"owns {description}: objects the runtime role made outlive a checkout and can stand"
                " in for built-ins in other tenants' queries; drop them",
            )
        )
    for (setting,) in conn.execute(
        text(
            "SELECT unnest(s.setconfig) FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole"
            " WHERE r.rolname = :r AND s.setdatabase IN (0, (SELECT oid FROM pg_database"
            "   WHERE datname = current_database())) ORDER BY 1"
        ),
        params,
    ):
        name, _, value = str(setting).partition("=")
        if value.strip("'\"").lower() in _HARMLESS_SETTINGS.get(name, ()) or name in DEFAULT_TIMEOUTS:
            continue  # timeouts: what `tenancy grant` sets; _timeout_findings reports one that is off
        found.append(
            Finding("role", role, f"has a role-level setting {name} (ALTER ROLE ... SET): remove it")
        )
    return found


def _timeout_findings(conn: Connection, role: str) -> list[Finding]:
    # Without them one tenant can LOCK a tenant table, sleep or idle in a transaction and make
    # every other tenant wait (README: Threat model). In force = what new sessions start with.
    if not conn.execute(
        text("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :r)"), {"r": role}
    ).scalar():
        return []
    found = []
    for name, default in DEFAULT_TIMEOUTS.items():
        value = setting_in_force(conn, role, name)
        if is_off(value):
            state = f"is off ({value})" if value is not None else "is not set"
            found.append(
                Finding(
                    "role",
                    role,
                    f"{name} {state} for the runtime role: one tenant can make every other tenant wait;"
                    f" run `tenancy grant` (as a superuser if it cannot: "
                    f"{timeout_statement(_quote(role), name, default)})",
                )
            )
    return found


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
