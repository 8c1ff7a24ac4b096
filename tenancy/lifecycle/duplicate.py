"""Copy a duplicated site's data: the origin tenant's rows into the new tenant.

Wix gives a duplicated site a new instance whose ``originInstanceId`` names the original
(``AppInstalled`` and Get App Instance); the webhook and ``tenancy sync`` store it in
``tenants.origin_instance_id`` and ``tenancy sync`` then calls :func:`copy_pending`.

Per tenant table, parents first: keys the database generates (Identity, ``serial``, a
``nextval()`` default) get new values from their own sequence, and every foreign key that points
at such a key is remapped, composite tenant keys included (``(instance_id, folder_id)``). The
old-to-new map of each generated column is a temporary table filled with ``nextval()`` before
the rows are inserted, so a self-reference is remapped in the same ``INSERT ... SELECT``. Other
keys (UUIDs, natural keys) are kept: keys are per tenant, so they cannot collide.

The whole copy of a tenant is one transaction: all of it or nothing, so a crash (SIGKILL) leaves
no half copy and a rerun starts over; ``copied_from_origin_at`` is set in that transaction, so
a second trigger copies nothing. The target's ``tenants`` row is locked first: two triggers at
once copy once. The origin is only read. A tenant that already has rows of its own is not
copied into (outcome ``has data``, recorded): the copy is for a site's first appearance.

Tables an app does not want copied (audit logs, per-site counters) are left out by name
(``skip_tables``, ``tenancy sync --copy-skip-table``) or marked with :func:`exclude_from_copy`
on the ``Table``; a copied table may not reference a skipped one (the reference would dangle).
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, MetaData, Table, text
from sqlalchemy.exc import DBAPIError

from tenancy.errors import LifecycleError
from tenancy.lifecycle.tables import TenantTable, TenantTables, discover

__all__ = [
    "COPY_INFO_KEY",
    "CopyReport",
    "TenantCopy",
    "copy_from_origin",
    "copy_pending",
    "exclude_from_copy",
]

COPY_INFO_KEY = "tenancy.copy"


def exclude_from_copy(table: Table) -> Table:
    """Mark a tenant table as not copied to duplicated sites (pass its ``MetaData`` as
    ``copy_from_origin(..., metadata=...)``)."""
    table.info[COPY_INFO_KEY] = False
    return table


@dataclass
class TenantCopy:
    """One tenant's copy: rows per table and how it ended."""

    instance_id: uuid.UUID
    origin: uuid.UUID | None
    counts: dict[str, int] = field(default_factory=dict)
    outcome: str = "copied"  # copied | already copied | no origin | has data | failed
    error: str | None = None

    @property
    def rows(self) -> int:
        """Rows over all tables."""
        return sum(self.counts.values())


@dataclass
class CopyReport:
    """What :func:`copy_pending` did."""

    copies: list[TenantCopy] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """No copy failed."""
        return all(c.outcome != "failed" for c in self.copies)

    def to_json(self) -> str:
        """One line of JSON."""
        return json.dumps(
            {
                "ok": self.ok,
                "seconds": round(self.seconds, 3),
                "copies": [
                    {
                        "instance_id": str(c.instance_id),
                        "origin_instance_id": str(c.origin) if c.origin else None,
                        "outcome": c.outcome,
                        "rows": c.rows,
                        "counts": c.counts,
                        **({"error": c.error} if c.error else {}),
                    }
                    for c in self.copies
                ],
            },
            sort_keys=True,
        )

    def summary(self) -> str:
        """A line per copy, then the totals."""
        lines = [
            f"{c.instance_id} <- {c.origin}: {c.outcome}, {c.rows} row(s)"
            + (f": {c.error}" if c.error else "")
            for c in self.copies
        ]
        done = sum(1 for c in self.copies if c.outcome == "copied")
        lines.append(f"copy: {done} tenant(s) copied from their origin in {self.seconds:.1f}s")
        return "\n".join(lines)


def _skipped(skip_tables: Iterable[str], metadata: MetaData | None) -> set[str]:
    names = set(skip_tables)
    if metadata is not None:
        names |= {t.name for t in metadata.tables.values() if t.info.get(COPY_INFO_KEY) is False}
    return names


def copy_pending(
    engine: Engine,
    *,
    skip_tables: Iterable[str] = (),
    metadata: MetaData | None = None,
    schema: str = "public",
) -> CopyReport:
    """Copy every active tenant with an origin and no copy yet (what ``tenancy sync`` runs)."""
    started = time.monotonic()
    skipped = _skipped(skip_tables, metadata)
    with engine.connect() as conn:
        pending = list(
            conn.execute(
                text(
                    "SELECT instance_id FROM tenants WHERE origin_instance_id IS NOT NULL"
                    " AND copied_from_origin_at IS NULL AND status = 'active' ORDER BY first_seen_at"
                )
            ).scalars()
        )
    report = CopyReport()
    for iid in pending:
        report.copies.append(copy_from_origin(engine, iid, skip_tables=skipped, schema=schema))
    report.seconds = time.monotonic() - started
    return report


def copy_from_origin(
    engine: Engine,
    instance_id: uuid.UUID,
    *,
    origin: uuid.UUID | None = None,
    skip_tables: Iterable[str] = (),
    metadata: MetaData | None = None,
    schema: str = "public",
) -> TenantCopy:
    """Copy the origin's rows of every tenant table into *instance_id* (see the module doc).

    *origin* defaults to the tenant's ``origin_instance_id`` (given, it is stored there). A
    database error (e.g. a unique constraint a copied row breaks) rolls the copy back and is
    reported as ``failed``; a schema that cannot be copied raises :class:`~tenancy.LifecycleError`.
    """
    skipped = _skipped(skip_tables, metadata)
    try:
        with engine.begin() as conn:
            return _copy(conn, instance_id, origin, skipped, schema)
    except DBAPIError as exc:
        detail = str(getattr(exc, "orig", exc)).strip().splitlines()
        return TenantCopy(
            instance_id, origin, outcome="failed", error=detail[0] if detail else type(exc).__name__
        )


def _copy(
    conn: Connection, iid: uuid.UUID, origin: uuid.UUID | None, skipped: set[str], schema: str
) -> TenantCopy:
    row = conn.execute(
        text(
            "SELECT origin_instance_id, copied_from_origin_at FROM tenants WHERE instance_id = :t FOR UPDATE"
        ),
        {"t": iid},
    ).first()
    if row is None:
        raise LifecycleError(f"tenant {iid} is not in the tenants table: register it first")
    origin = origin or row[0]
    if origin is None or origin == iid:
        return TenantCopy(iid, None, outcome="no origin")
    if row[1] is not None:
        return TenantCopy(iid, origin, outcome="already copied")
    tables = discover(conn, schema=schema)
    copied = [t for t in tables.insert_order if t.name not in skipped]
    _require_closed(copied, skipped)
    done = {"t": iid, "o": origin}
    mark = text(
        # The time as a parameter: Citus refuses a VOLATILE function (clock_timestamp()) in an UPDATE.
        "UPDATE tenants SET copied_from_origin_at = :at, origin_instance_id = :o WHERE instance_id = :t"
    )
    for table in copied:
        has = conn.execute(
            text(f"SELECT EXISTS (SELECT 1 FROM {table.qualified} WHERE instance_id = :t)"), done
        )
        if has.scalar_one():
            conn.execute(mark, {**done, "at": dt.datetime.now(dt.UTC)})
            return TenantCopy(
                iid, origin, outcome="has data", error=f"table {table.name!r} already has its rows"
            )
    maps = _make_maps(conn, tables, copied, origin)
    counts = {table.name: _insert(conn, table, maps, iid, origin) for table in copied}
    conn.execute(mark, {**done, "at": dt.datetime.now(dt.UTC)})
    return TenantCopy(iid, origin, counts)


def _require_closed(copied: list[TenantTable], skipped: set[str]) -> None:
    for table in copied:
        for fk in table.foreign_keys:
            if fk.referred in skipped:
                raise LifecycleError(
                    f"table {table.name!r} references {fk.referred!r} ({fk.name}), which is not copied: "
                    f"its copied rows would point at nothing; skip {table.name!r} too, "
                    f"or copy {fk.referred!r}"
                )


def _make_maps(
    conn: Connection, tables: TenantTables, copied: list[TenantTable], origin: uuid.UUID
) -> dict[tuple[str, str], str]:
    """A temporary old -> new table per generated column of a copied table, filled from its sequence."""
    maps: dict[tuple[str, str], str] = {}
    for table in copied:
        for col in table.generated:
            name = f"tenancy_copy_map_{len(maps)}"
            conn.execute(
                text(
                    f"CREATE TEMPORARY TABLE {name} (old bigint PRIMARY KEY, new bigint NOT NULL)"
                    " ON COMMIT DROP"
                )
            )
            conn.execute(
                text(
                    f"INSERT INTO {name} (old, new) SELECT {_q(col.name)}, nextval(CAST(:seq AS regclass))"
                    f" FROM {table.qualified} WHERE instance_id = :o AND {_q(col.name)} IS NOT NULL"
                ),
                {"seq": col.sequence, "o": origin},
            )
            conn.execute(text(f"ANALYZE {name}"))  # the planner then joins it by hash, not by guess
            maps[(table.name, col.name)] = name
    return maps


def _insert(
    conn: Connection, table: TenantTable, maps: dict[tuple[str, str], str], iid: uuid.UUID, origin: uuid.UUID
) -> int:
    remapped: dict[str, str] = {}  # column -> map table
    for fk in table.foreign_keys:
        for name, ref in zip(fk.columns, fk.referred_columns, strict=True):
            if (fk.referred, ref) in maps and name not in remapped:
                remapped[name] = maps[(fk.referred, ref)]
    for col in table.generated:
        remapped[col.name] = maps[(table.name, col.name)]
    names: list[str] = []
    exprs: list[str] = []
    joins: list[str] = []
    for col in table.columns:
        if col.computed:
            continue
        names.append(_q(col.name))
        if col.name == "instance_id":
            exprs.append("CAST(:t AS uuid)")
        elif col.name in remapped:
            alias = f"m{len(joins)}"
            joins.append(f" LEFT JOIN {remapped[col.name]} {alias} ON {alias}.old = s.{_q(col.name)}")
            exprs.append(f"COALESCE({alias}.new, s.{_q(col.name)})")
        else:
            exprs.append(f"s.{_q(col.name)}")
    overriding = " OVERRIDING SYSTEM VALUE" if any(c.identity for c in table.columns) else ""
    statement = (
        f"INSERT INTO {table.qualified} ({', '.join(names)}){overriding} SELECT {', '.join(exprs)}"
        f" FROM {table.qualified} s{''.join(joins)} WHERE s.instance_id = :o"
    )
    return int(conn.execute(text(statement), {"t": iid, "o": origin}).rowcount)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
