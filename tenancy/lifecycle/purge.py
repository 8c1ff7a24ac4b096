"""Purge: delete every row of every tenant table for a tenant, in bounded batches.

``purge(engine)`` purges the removed tenants whose retention is over (default 30 days);
``purge(engine, instances=[...], immediately=True)`` erases those tenants now, whatever their
status (a site owner's deletion request). Tables go children before parents, whatever the
foreign keys' ``ON DELETE``, so every batch deletes rows nothing references any more.

Each batch is its own short transaction: ``SET LOCAL lock_timeout`` (a batch that cannot get
its locks is retried, then the purge stops with :class:`~tenancy.LifecycleError`), then
``DELETE ... WHERE ctid = ANY(ARRAY(SELECT ctid ... WHERE instance_id = :iid LIMIT n))`` (a TID
scan of rows an index found: no long lock, no sort) and the count added to the tenant's row.
The state lives in the data: a killed purge leaves fewer rows and exact counts; a rerun picks
the tenant up again (``purge_started_at`` is set) and finishes. The tombstone is written last,
after every table is empty.

A self-referencing table (``parent_id`` to the same table): when the referencing columns are
nullable they are first set NULL in batches, then rows are deleted in any order; when they are
NOT NULL, leaves go first (rows no other row references), batch after batch. A purge by
retention checks in every batch that the tenant is still ``removed``: a reinstall stops it.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from tenancy.errors import LifecycleError
from tenancy.lifecycle.tables import TenantTable, TenantTables, discover
from tenancy.lifecycle.tombstone import (
    begin_purge,
    count_batch,
    due_for_purge,
    removed_guard,
    write_tombstone,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_RETENTION",
    "PurgeReport",
    "TenantPurge",
    "count_rows",
    "purge",
]

DEFAULT_RETENTION = dt.timedelta(days=30)
DEFAULT_BATCH_SIZE = 5000
DEFAULT_LOCK_TIMEOUT = dt.timedelta(seconds=1)
_LOCK_RETRIES = 5
_LOCK_NOT_AVAILABLE = "55P03"

OnBatch = Callable[[uuid.UUID, str, int], None]
"""Progress: ``(instance_id, table, rows deleted from it so far)`` after each batch."""


@dataclass
class TenantPurge:
    """One tenant's purge: rows per table (to delete, in a dry run), and how it ended."""

    instance_id: uuid.UUID
    counts: dict[str, int] = field(default_factory=dict)
    outcome: str = "purged"  # purged | would purge (dry run) | reinstalled | failed
    error: str | None = None

    @property
    def rows(self) -> int:
        """Rows over all tables."""
        return sum(self.counts.values())


@dataclass
class PurgeReport:
    """What a run of :func:`purge` did (or, in a dry run, would do)."""

    dry_run: bool
    tenants: list[TenantPurge] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """No tenant failed."""
        return all(t.outcome != "failed" for t in self.tenants)

    def to_json(self) -> str:
        """One line of JSON (the ``--json`` output)."""
        return json.dumps(
            {
                "dry_run": self.dry_run,
                "ok": self.ok,
                "seconds": round(self.seconds, 3),
                "tenants": [
                    {
                        "instance_id": str(t.instance_id),
                        "outcome": t.outcome,
                        "rows": t.rows,
                        "counts": t.counts,
                        **({"error": t.error} if t.error else {}),
                    }
                    for t in self.tenants
                ],
            },
            sort_keys=True,
        )

    def summary(self) -> str:
        """A few lines for people: one per tenant, then the totals."""
        verb = "would purge" if self.dry_run else "purged"
        lines = []
        for t in self.tenants:
            tables = ", ".join(f"{name} {n}" for name, n in sorted(t.counts.items())) or "no rows"
            extra = f": {t.error}" if t.error else ""
            lines.append(f"{t.instance_id}: {t.outcome}, {t.rows} row(s) ({tables}){extra}")
        done = sum(1 for t in self.tenants if t.outcome in {"purged", "would purge"})
        rows = sum(t.rows for t in self.tenants)
        lines.append(f"purge: {verb} {done} tenant(s), {rows} row(s) in {self.seconds:.1f}s")
        return "\n".join(lines)


def count_rows(engine: Engine, instance_id: uuid.UUID, tables: TenantTables) -> dict[str, int]:
    """The tenant's rows per tenant table (what a purge would delete, an export write)."""
    counts = {}
    with engine.connect() as conn:
        for table in tables.delete_order:
            query = text(f"SELECT count(*) FROM {table.qualified} WHERE instance_id = :iid")
            counts[table.name] = int(conn.execute(query, {"iid": instance_id}).scalar_one())
    return counts


def purge(
    engine: Engine,
    *,
    retention: dt.timedelta = DEFAULT_RETENTION,
    instances: Sequence[uuid.UUID] = (),
    immediately: bool = False,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    lock_timeout: dt.timedelta = DEFAULT_LOCK_TIMEOUT,
    on_batch: OnBatch | None = None,
    schema: str = "public",
    now: dt.datetime | None = None,
) -> PurgeReport:
    """Purge tenants on the admin *engine* (the owner role, BYPASSRLS); see the module doc.

    Without *instances*: every removed tenant removed longer than *retention* ago. With
    *instances*: those of them that are due, or all of them when *immediately* (erasure on
    request). *dry_run* counts the rows and deletes nothing. Idempotent: a purged tenant is not
    due again until it is reinstalled and removed again.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    started = time.monotonic()
    now = now or dt.datetime.now(dt.UTC)
    with engine.connect() as conn:
        tables = discover(conn, schema=schema)
        due = due_for_purge(conn, cutoff=now - retention)
    if immediately:
        targets = list(dict.fromkeys(instances))
    else:
        wanted = set(instances)
        targets = [iid for iid in due if not wanted or iid in wanted]
    report = PurgeReport(dry_run=dry_run)
    for iid in targets:
        if dry_run:
            report.tenants.append(TenantPurge(iid, count_rows(engine, iid, tables), "would purge"))
            continue
        try:
            report.tenants.append(
                _purge_tenant(engine, tables, iid, now, immediately, batch_size, lock_timeout, on_batch)
            )
        except LifecycleError as exc:
            report.tenants.append(TenantPurge(iid, outcome="failed", error=str(exc)))
    report.seconds = time.monotonic() - started
    return report


def _purge_tenant(
    engine: Engine,
    tables: TenantTables,
    iid: uuid.UUID,
    now: dt.datetime,
    immediately: bool,
    batch_size: int,
    lock_timeout: dt.timedelta,
    on_batch: OnBatch | None,
) -> TenantPurge:
    with engine.begin() as conn:
        if not begin_purge(conn, iid, now=now, immediately=immediately):
            return TenantPurge(iid, outcome="reinstalled")
    guard = removed_guard(immediately=immediately)
    params = {"iid": iid, "n": batch_size}
    deleted_here: dict[str, int] = {}  # this run's deletes (the row's counts span a killed run too)
    for table in tables.delete_order:
        deleted = 0
        for statement in _unlink_statements(table, guard):  # nullable self-references first
            while _batch(engine, statement, params, lock_timeout, table.name) > 0:
                pass
        statement = _delete_statement(table, guard)
        while True:
            n = _batch(engine, statement, params, lock_timeout, table.name, iid=iid)
            if n == 0:
                break
            deleted += n
            deleted_here[table.name] = deleted
            if on_batch is not None:
                on_batch(iid, table.name, deleted)
    with engine.begin() as conn:
        counts = write_tombstone(conn, iid, now=now, immediately=immediately)
    if counts is None and not immediately:
        return TenantPurge(iid, outcome="reinstalled")
    # No tenants row (an erasure of an id never registered): this run's counts.
    return TenantPurge(iid, counts if counts is not None else deleted_here, "purged")


def _unlink_statements(table: TenantTable, guard: str) -> list[str]:
    """For each self-reference with nullable columns: set them NULL, a batch at a time."""
    statements = []
    nullable = {col.name for col in table.columns if col.nullable}
    for fk in table.self_references:
        own = [name for name in fk.columns if name != "instance_id"]
        if not own or not set(own) <= nullable:
            continue
        sets = ", ".join(f"{_q(name)} = NULL" for name in own)
        some = " OR ".join(f"{_q(name)} IS NOT NULL" for name in own)
        statements.append(
            f"UPDATE {table.qualified} SET {sets} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {table.qualified}"
            f" WHERE instance_id = :iid AND ({some}) LIMIT :n)){guard}"
        )
    return statements


def _delete_statement(table: TenantTable, guard: str) -> str:
    nullable = {col.name for col in table.columns if col.nullable}
    leaves = []
    for fk in table.self_references:
        own = [name for name in fk.columns if name != "instance_id"]
        if own and set(own) <= nullable:
            continue  # unlinked before the deletes
        pairs = [(c, r) for c, r in zip(fk.columns, fk.referred_columns, strict=True) if c != "instance_id"]
        match = " AND ".join(f"y.{_q(c)} = x.{_q(r)}" for c, r in pairs)
        # A leaf: no other row of the tenant references it (a row referencing itself is a leaf).
        leaves.append(
            f" AND NOT EXISTS (SELECT 1 FROM {table.qualified} y WHERE y.instance_id = x.instance_id"
            f" AND {match} AND y.ctid <> x.ctid)"
        )
    return (
        f"DELETE FROM {table.qualified} WHERE ctid = ANY(ARRAY(SELECT x.ctid FROM {table.qualified} x"
        f" WHERE x.instance_id = :iid{''.join(leaves)} LIMIT :n)){guard}"
    )


def _batch(
    engine: Engine,
    statement: str,
    params: dict[str, Any],
    lock_timeout: dt.timedelta,
    table: str,
    *,
    iid: uuid.UUID | None = None,
) -> int:
    """One batch in its own transaction; a lock timeout is retried a few times."""
    timeout_ms = max(1, int(lock_timeout.total_seconds() * 1000))
    for attempt in range(_LOCK_RETRIES):
        try:
            with engine.begin() as conn:
                conn.execute(text(f"SET LOCAL lock_timeout = {timeout_ms}"))
                n = conn.execute(text(statement), params).rowcount
                if iid is not None and n:
                    count_batch(conn, iid, table, n)
                return int(n)
        except OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
                raise
            time.sleep(0.05 * 2**attempt)
    raise LifecycleError(
        f"table {table!r}: could not take the locks of a purge batch within {lock_timeout} "
        f"({_LOCK_RETRIES} tries); another transaction holds them: run the purge again later"
    )


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
