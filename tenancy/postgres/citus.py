"""Citus: tenant tables distributed by ``instance_id``, co-located with ``tenants``.

Every tenant table's keys lead with ``instance_id`` (invariant 5), so each one can be a
distributed table with ``instance_id`` as its distribution column, all in ``tenants``'
co-location group: one tenant's rows of every table sit on the same shard, and a query
that names the tenant (every ORM query of a tenant session does) is routed to one node.

``tenants`` is distributed too, not a reference table: a reference table is copied to every
node, so each sync write would be a two-phase commit on all of them and each row lock an
exclusive lock on every copy (parallel sync processes wait instead of skipping). Distributed,
a tenant's ``tenants`` row is one shard row next to its data, its writes touch one node, and
composite foreign keys to it stay co-located.

Order: Citus refuses a foreign key to a table that is not distributed yet, so parents are
distributed before their children (``tenants`` first). :func:`distribute_tenant_table`
checks that and names the parent to distribute first.

Sessions: Citus forwards transaction-local ``SET LOCAL`` to the shards only with
``citus.propagate_set_commands = 'local'`` (:data:`PROPAGATE_SETTING`); ``tenancy grant``
sets it for the runtime role (:func:`propagation_statements`), ``tenancy check`` audits it.
Without it RLS on the shards reads no tenant: zero rows and refused writes, silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from tenancy.errors import ConfigurationError
from tenancy.models import TENANT_COLUMN
from tenancy.postgres.isolation import CITUS_PREDICATE_SQL, POLICY_NAME, has_citus, isolation_statements

__all__ = [
    "COLOCATE_WITH",
    "PROPAGATE_SETTING",
    "PlacementSecurity",
    "distribute_tenant_table",
    "distributed_tables",
    "has_citus",
    "placement_security",
    "propagation_in_force",
    "propagation_statements",
    "set_propagation",
    "setting_in_force",
    "undistribute_tenant_table",
]

PROPAGATE_SETTING = "citus.propagate_set_commands"
COLOCATE_WITH = "tenants"


def distributed_tables(connection: Connection) -> dict[str, str]:
    """Every Citus table of the database: qualified name -> ``"distributed"`` or ``"reference"``."""
    rows = connection.execute(
        text(
            "SELECT logicalrelid::regclass::text, partmethod FROM pg_dist_partition"
            " WHERE partmethod IN ('h', 'n')"
        )
    ).all()
    return {name: "distributed" if method == "h" else "reference" for name, method in rows}


def _regclass(connection: Connection, table_name: str) -> str:
    name = connection.execute(text("SELECT to_regclass(:t)::text"), {"t": table_name}).scalar()
    if name is None:
        raise ConfigurationError(f"no table {table_name!r} to distribute")
    return str(name)


def _parents(connection: Connection, table: str) -> list[str]:
    return list(
        connection.execute(
            text(
                "SELECT DISTINCT confrelid::regclass::text FROM pg_constraint"
                " WHERE contype = 'f' AND conrelid = CAST(:t AS regclass) AND confrelid <> conrelid"
                " ORDER BY 1"
            ),
            {"t": table},
        ).scalars()
    )


def distribute_tenant_table(
    connection: Connection, table_name: str, *, colocate_with: str = COLOCATE_WITH
) -> bool:
    """Distribute *table_name* by ``instance_id``, co-located with *colocate_with*.

    Returns ``False`` (and does nothing) without Citus, so one migration serves plain
    PostgreSQL and Citus; idempotent. Raises :class:`~tenancy.ConfigurationError` when a table
    it references is not distributed yet (parents first) or *colocate_with* is not.
    """
    if not has_citus(connection):
        return False
    table = _regclass(connection, table_name)
    done = distributed_tables(connection)
    if table in done:
        return True
    missing = [parent for parent in _parents(connection, table) if parent not in done]
    if missing:
        raise ConfigurationError(
            f"distribute {', '.join(missing)} before {table}: Citus needs the tables a foreign key "
            "references to be distributed (or reference tables) first, parents before children"
        )
    target = _regclass(connection, colocate_with)
    if target == table:
        colocation = "default"
    elif done.get(target) == "distributed":
        colocation = target
    else:
        raise ConfigurationError(f"distribute {target} before {table}: tenant tables are co-located with it")
    _reseal_for_citus(connection, table)
    connection.execute(
        text("SELECT create_distributed_table(CAST(:t AS regclass), :col, colocate_with => :with)"),
        {"t": table, "col": TENANT_COLUMN, "with": colocation},
    )
    return True


def _reseal_for_citus(connection: Connection, table: str) -> None:
    # A policy made before the database had Citus has the sealed predicate's sub-select, which
    # Citus refuses on a distributed table: the same check, called directly.
    has_policy = connection.execute(
        text(
            "SELECT EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = CAST(:t AS regclass) AND polname = :p)"
        ),
        {"t": table, "p": POLICY_NAME},
    ).scalar_one()
    if has_policy:
        for statement in isolation_statements(table, predicate=CITUS_PREDICATE_SQL):
            connection.execute(text(statement))


def undistribute_tenant_table(connection: Connection, table_name: str) -> bool:
    """Reverse :func:`distribute_tenant_table`: bring the table's rows back to the coordinator.

    Children first: Citus refuses to undistribute a table that distributed tables reference.
    Returns ``False`` when there is nothing to do (no Citus, or the table is not distributed).
    """
    if not has_citus(connection):
        return False
    table = _regclass(connection, table_name)
    if table not in distributed_tables(connection):
        return False
    connection.execute(text("SELECT undistribute_table(CAST(:t AS regclass))"), {"t": table})
    return True


def propagation_statements(role: str, database: str) -> list[str]:
    """SQL that makes ``SET LOCAL`` reach the shards in *role*'s sessions on *database*.

    Both names come quoted. The first needs CREATEROLE (or a superuser); the database owner
    can run the second, which also covers the database's other roles (harmless: it forwards
    only transaction-local settings). :func:`set_propagation` tries them in this order.
    """
    return [
        f"ALTER ROLE {role} IN DATABASE {database} SET {PROPAGATE_SETTING} = 'local'",
        f"ALTER DATABASE {database} SET {PROPAGATE_SETTING} = 'local'",
    ]


def set_propagation(connection: Connection, role: str, quoted_role: str) -> str:
    """Make ``SET LOCAL`` reach the shards for *role*; returns the statement that did it.

    Raises :class:`~tenancy.ConfigurationError` with the statement to run as a superuser when
    the current role may run neither form.
    """
    if propagation_in_force(connection, role) == "local":
        return "already in force"
    database = connection.dialect.identifier_preparer.quote(
        connection.execute(text("SELECT current_database()")).scalar_one()
    )
    statements = propagation_statements(quoted_role, database)
    for statement in statements:
        try:
            with connection.begin_nested():
                connection.execute(text(statement))
            return statement
        except DBAPIError:
            continue
    raise ConfigurationError(
        f"tenant sessions on Citus need {PROPAGATE_SETTING} = 'local' for the runtime role, and "
        f"{connection.execute(text('SELECT current_user')).scalar_one()!r} may not set it; "
        f"run as a superuser: {statements[0]}"
    )


_IN_FORCE_SQL = text(
    """
    SELECT s.setrole <> 0 AS for_role, s.setdatabase <> 0 AS for_db, cfg
    FROM pg_db_role_setting s
    CROSS JOIN LATERAL unnest(s.setconfig) AS cfg
    WHERE s.setrole IN (0, (SELECT oid FROM pg_roles WHERE rolname = :role))
      AND s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
      AND cfg LIKE :prefix
    """
)


def propagation_in_force(connection: Connection, role: str) -> str | None:
    """The ``citus.propagate_set_commands`` value *role*'s new sessions start with here."""
    return setting_in_force(connection, role, PROPAGATE_SETTING)


def setting_in_force(connection: Connection, role: str, name: str) -> str | None:
    """The value of setting *name* that *role*'s new sessions start with in this database.

    PostgreSQL's order: role-in-database, role, database, then the server's configuration.
    """
    rows = connection.execute(_IN_FORCE_SQL, {"role": role, "prefix": f"{name}=%"}).all()
    rank = {(True, True): 0, (True, False): 1, (False, True): 2}
    for for_role, for_db, cfg in sorted(rows, key=lambda r: rank.get((r.for_role, r.for_db), 3)):
        if (for_role, for_db) in rank:
            return str(cfg).split("=", 1)[1]
    value = connection.execute(
        text(
            "SELECT reset_val FROM pg_settings"
            " WHERE name = :n AND source IN ('default', 'configuration file')"
        ),
        {"n": name},
    ).scalar()
    return None if value is None else str(value)


@dataclass(frozen=True)
class PlacementSecurity:
    """Row-level security of one shard placement, as its worker reports it."""

    node: str  # host:port
    shard: int
    enabled: bool
    forced: bool
    policies: tuple[tuple[str, bool, str, str | None, str | None], ...]  # name, permissive, cmd, using, check


# Run on every placement by run_command_on_placements, which substitutes the shard's name
# for %s (so the command has no other percent sign). One JSON value per placement.
_PLACEMENT_SQL = (
    "SELECT json_build_array(c.relrowsecurity, c.relforcerowsecurity, coalesce((SELECT json_agg("
    "json_build_array(p.polname, p.polpermissive, p.polcmd, pg_get_expr(p.polqual, p.polrelid),"
    " pg_get_expr(p.polwithcheck, p.polrelid)) ORDER BY p.polname) FROM pg_policy p"
    " WHERE p.polrelid = c.oid), '[]'))::text FROM pg_class c WHERE c.oid = '%s'::regclass"
)


def placement_security(connection: Connection, table: str) -> list[PlacementSecurity]:
    """RLS state of every shard placement of the distributed *table*, read on the workers.

    A placement that could not be queried comes back with nothing enabled and no policy.
    """
    rows = connection.execute(
        text(
            "SELECT nodename, nodeport, shardid, success, result"
            " FROM run_command_on_placements(CAST(:t AS regclass), :cmd) ORDER BY shardid, nodeport"
        ),
        {"t": table, "cmd": _PLACEMENT_SQL},
    ).all()
    found = []
    for host, port, shard, success, result in rows:
        enabled, forced, policies = json.loads(result) if success else (False, False, [])
        found.append(
            PlacementSecurity(
                node=f"{host}:{port}",
                shard=int(shard),
                enabled=bool(enabled),
                forced=bool(forced),
                policies=tuple((n, bool(pm), cmd, q, w) for n, pm, cmd, q, w in policies),
            )
        )
    return found
