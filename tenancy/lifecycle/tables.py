"""Every tenant table, found once from the database's catalog, in a safe order.

A tenant table is a table of the schema with an ``instance_id`` column (as ``tenancy check``
finds them), other than ``tenants`` itself. Purge, export and copy work from one
:class:`TenantTables`: the columns, primary key, keys the database generates (Identity,
``serial`` or a ``nextval()`` default) and the foreign keys among tenant tables.

Order: parents before children for inserts, children before parents for deletes, whatever the
foreign keys' ``ON DELETE``. A self-reference is allowed (purge and copy handle it, see
:mod:`tenancy.lifecycle.purge` and :mod:`tenancy.lifecycle.duplicate`). A cycle between
distinct tables is refused with :class:`LifecycleError` naming them, deferrable or not: purge
works in many short transactions, so no single transaction can defer the check to its end.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy import Connection, text

from tenancy.errors import ConfigurationError, LifecycleError
from tenancy.models import TENANT_COLUMN, TENANTS_TABLE
from tenancy.postgres.roles import tenant_tables

__all__ = ["Column", "ForeignKey", "TenantTable", "TenantTables", "discover"]

_NEXTVAL = re.compile(r"^nextval\('(?P<seq>(?:[^']|'')+)'::regclass\)$")


@dataclass(frozen=True)
class Column:
    """One column: ``sequence`` is set for a key the database generates (Identity or serial)."""

    name: str
    type: str
    nullable: bool
    sequence: str | None = None
    identity: bool = False
    computed: bool = False  # GENERATED ALWAYS AS (...) STORED: never inserted


@dataclass(frozen=True)
class ForeignKey:
    """A foreign key from ``table`` to ``referred`` (both tenant tables), column by column."""

    name: str
    table: str
    columns: tuple[str, ...]
    referred: str
    referred_columns: tuple[str, ...]
    deferrable: bool


@dataclass(frozen=True)
class TenantTable:
    """A tenant table's shape, as the lifecycle operations need it."""

    name: str
    schema: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    foreign_keys: tuple[ForeignKey, ...] = ()

    @property
    def qualified(self) -> str:
        """``"schema"."name"``, quoted for SQL."""
        return f"{_quote(self.schema)}.{_quote(self.name)}"

    @property
    def self_references(self) -> tuple[ForeignKey, ...]:
        """Foreign keys from this table to itself (a tree: folders in folders)."""
        return tuple(fk for fk in self.foreign_keys if fk.referred == self.name)

    @property
    def generated(self) -> tuple[Column, ...]:
        """Columns whose values the database generates (get new values in a copy)."""
        return tuple(col for col in self.columns if col.sequence is not None)


@dataclass(frozen=True)
class TenantTables:
    """The tenant tables of a schema; ``insert_order`` has parents first."""

    schema: str
    insert_order: tuple[TenantTable, ...]
    by_name: dict[str, TenantTable] = field(repr=False)

    @property
    def delete_order(self) -> tuple[TenantTable, ...]:
        """Children before parents."""
        return tuple(reversed(self.insert_order))

    def __iter__(self) -> Iterator[TenantTable]:
        return iter(self.insert_order)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def discover(connection: Connection, *, schema: str = "public") -> TenantTables:
    """Read the tenant tables of *schema* from the catalog (PostgreSQL; an owner connection).

    Raises :class:`LifecycleError` for a foreign-key cycle between distinct tenant tables, and
    :class:`~tenancy.ConfigurationError` off PostgreSQL.
    """
    if connection.dialect.name != "postgresql":
        raise ConfigurationError("the tenant lifecycle (purge, export, copy) needs PostgreSQL")
    names = [name for name in tenant_tables(connection, schema) if name != TENANTS_TABLE]
    tables: dict[str, TenantTable] = {}
    fks = _foreign_keys(connection, schema, names)
    for name in names:
        qualified = f"{_quote(schema)}.{_quote(name)}"
        tables[name] = TenantTable(
            name=name,
            schema=schema,
            columns=_columns(connection, qualified),
            primary_key=_primary_key(connection, qualified),
            foreign_keys=tuple(fk for fk in fks if fk.table == name),
        )
    order = _parents_first(tables)
    return TenantTables(schema=schema, insert_order=tuple(tables[n] for n in order), by_name=tables)


def _columns(connection: Connection, qualified: str) -> tuple[Column, ...]:
    rows = connection.execute(
        text(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,"
            " a.attidentity <> '', a.attgenerated <> '', pg_get_expr(d.adbin, d.adrelid),"
            " pg_get_serial_sequence(CAST(:t AS text), a.attname)"
            " FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
            " WHERE a.attrelid = CAST(:t AS regclass) AND a.attnum > 0 AND NOT a.attisdropped"
            " ORDER BY a.attnum"
        ),
        {"t": qualified},
    ).all()
    columns = []
    for name, type_, nullable, identity, computed, default, owned in rows:
        sequence = owned
        if sequence is None and default and not computed:
            match = _NEXTVAL.match(default)  # a nextval() default on a sequence the column does not own
            sequence = match["seq"].replace("''", "'") if match else None
        if name == TENANT_COLUMN:
            sequence = None
        columns.append(Column(name, type_, nullable, sequence, identity, computed))
    return tuple(columns)


def _primary_key(connection: Connection, qualified: str) -> tuple[str, ...]:
    return tuple(
        connection.execute(
            text(
                "SELECT a.attname FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(n, o)"
                " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n"
                " WHERE i.indrelid = CAST(:t AS regclass) AND i.indisprimary ORDER BY k.o"
            ),
            {"t": qualified},
        ).scalars()
    )


def _foreign_keys(connection: Connection, schema: str, names: list[str]) -> list[ForeignKey]:
    rows = connection.execute(
        text(
            "SELECT con.conname, c.relname, f.relname, con.condeferrable,"
            " ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(n, o)"
            "       JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.o),"
            " ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(n, o)"
            "       JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.o)"
            " FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid"
            " JOIN pg_class f ON f.oid = con.confrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
            " JOIN pg_namespace fn ON fn.oid = f.relnamespace"
            " WHERE con.contype = 'f' AND n.nspname = :s AND fn.nspname = :s"
            " AND c.relname = ANY(:t) AND f.relname = ANY(:t) ORDER BY c.relname, con.conname"
        ),
        {"s": schema, "t": names},
    ).all()
    return [
        ForeignKey(name, table, tuple(cols), referred, tuple(rcols), deferrable)
        for name, table, referred, deferrable, cols, rcols in rows
    ]


def _parents_first(tables: dict[str, TenantTable]) -> list[str]:
    """Topological order (parents first, by name among equals); refuses a cycle, naming it."""
    parents = {
        name: {fk.referred for fk in t.foreign_keys if fk.referred != name} for name, t in tables.items()
    }
    order: list[str] = []
    done: set[str] = set()
    while len(done) < len(tables):
        ready = sorted(n for n in tables if n not in done and parents[n] <= done)
        if not ready:
            raise LifecycleError(
                "foreign keys form a cycle between tenant tables "
                + " -> ".join(_cycle(parents, done))
                + ": purge, export and copy need an order (parents before children); "
                "make one of the foreign keys a reference the app keeps itself, or drop it"
            )
        order.extend(ready)
        done.update(ready)
    return order


def _cycle(parents: dict[str, set[str]], done: set[str]) -> list[str]:
    start = min(n for n in parents if n not in done)
    path = [start]
    while True:
        nxt = min(p for p in parents[path[-1]] if p not in done)
        if nxt in path:
            return [*path[path.index(nxt) :], nxt]
        path.append(nxt)
