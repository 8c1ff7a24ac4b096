"""Purge: delete every row of every tenant table for a tenant, in bounded batches.

``purge(engine)`` purges the removed tenants whose retention is over (default 30 days);
``purge(engine, instances=[...], immediately=True)`` erases those tenants now, whatever their
status (a site owner's deletion request). Tables go children before parents, whatever the
foreign keys' ``ON DELETE``, so every batch deletes rows nothing references any more.

Each batch is its own short transaction: ``SET LOCAL lock_timeout`` (a batch that cannot get
its locks is retried, then the tenant is reported failed), then the next batch in primary-key
order, ``DELETE ... WHERE ctid = ANY(ARRAY(SELECT ctid ... WHERE instance_id = :iid AND key >
:last ORDER BY key LIMIT n))`` (a TID scan of rows the primary key's index found: no long lock,
no sort, no rescan of rows already deleted), and the count added to the tenant's row.
The ``DELETE`` names the tenant too (``instance_id = :iid``): on Citus that makes the whole
batch one router-executed statement on the tenant's shard, where ctids mean something (Citus
refuses them in a statement it plans across shards). There ``SET LOCAL
citus.propagate_set_commands = 'local'`` comes first, so the batch's ``lock_timeout`` reaches
the worker where the row locks are taken.
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

from tenancy.errors import ConfigurationError, LifecycleError
from tenancy.lifecycle.tables import TenantTable, TenantTables, discover
from tenancy.lifecycle.tombstone import (
    begin_purge,
    count_batch,
    due_for_purge,
    removed_guard,
    write_tombstone,
)
from tenancy.postgres.citus import PROPAGATE_SETTING, has_citus

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
    longest_batch_seconds: float = 0.0  # the longest batch transaction: no lock was held longer

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
                        "longest_batch_seconds": round(t.longest_batch_seconds, 3),
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
    pause: dt.timedelta = dt.timedelta(0),
    on_batch: OnBatch | None = None,
    schema: str = "public",
    now: dt.datetime | None = None,
) -> PurgeReport:
    """Purge tenants on the admin *engine* (the owner role, BYPASSRLS); see the module doc.

    Without *instances*: every removed tenant removed longer than *retention* ago. With
    *instances*: those of them that are due, or all of them when *immediately* (erasure on
    request). *dry_run* counts the rows and deletes nothing. *pause* is a sleep after every batch:
    on a busy database it leaves the CPU and I/O to other tenants' queries. Idempotent: a purged tenant is not
    due again until it is reinstalled and removed again.
    """
    if batch_size < 1:
        raise ConfigurationError("batch_size must be >= 1")
    started = time.monotonic()
    now = now or dt.datetime.now(dt.UTC)
    with engine.connect() as conn:
        tables = discover(conn, schema=schema)
        due = due_for_purge(conn, cutoff=now - retention)
        citus = has_citus(conn)
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
                _purge_tenant(
                    engine,
                    tables,
                    iid,
                    now,
                    immediately,
                    _Batches(engine, iid, batch_size, lock_timeout, pause, citus=citus),
                    on_batch,
                )
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
    runner: _Batches,
    on_batch: OnBatch | None,
) -> TenantPurge:
    with engine.begin() as conn:
        if not begin_purge(conn, iid, now=now, immediately=immediately):
            return TenantPurge(iid, outcome="reinstalled")
    guard = removed_guard(immediately=immediately)
    deleted_here: dict[str, int] = {}  # this run's deletes (the row's counts span a killed run too)
    for table in tables.delete_order:
        deleted = 0

        def progress(n: int, table: TenantTable = table) -> None:
            nonlocal deleted
            deleted += n
            deleted_here[table.name] = deleted
            if on_batch is not None:
                on_batch(iid, table.name, deleted)

        for unlink in _unlink_statements(table, guard):  # nullable self-references first
            runner.run(table, unlink, counted=False)
        runner.run(table, _delete_statement(table, guard), counted=True, on_rows=progress)
    with engine.begin() as conn:
        counts = write_tombstone(conn, iid, now=now, immediately=immediately)
    if counts is None and not immediately:
        return TenantPurge(iid, outcome="reinstalled", longest_batch_seconds=runner.longest)
    # No tenants row (an erasure of an id never registered): this run's counts.
    result = counts if counts is not None else deleted_here
    return TenantPurge(iid, result, "purged", longest_batch_seconds=runner.longest)


@dataclass(frozen=True)
class _Statement:
    """A batch statement: ``sql`` for the first batch; with ``keyset``, ``next_sql`` continues
    after the last primary key of the previous batch (``:k0``, ``:k1``, ...)."""

    sql: str
    next_sql: str | None = None


def _keyset(table: TenantTable, where: str, action: str) -> _Statement:
    """``action`` (``DELETE FROM t`` / ``UPDATE t SET ...``) on the next batch in primary-key
    order. Each batch starts where the last ended, so none walks again over the index entries of
    rows already deleted (a plain ``LIMIT n`` rescan would: quadratic in the tenant's size)."""
    keys = [name for name in table.primary_key if name != "instance_id"]
    cols = ", ".join(_q(k) for k in keys)
    after = f" AND ({cols}) > ({', '.join(f':k{i}' for i in range(len(keys)))})"

    def sql(extra: str) -> str:
        return (
            f"WITH batch AS MATERIALIZED (SELECT ctid AS tid, {cols} FROM {table.qualified}"
            f" WHERE instance_id = :iid{where}{extra} ORDER BY {cols} LIMIT :n),"
            f" done AS ({action} WHERE instance_id = :iid"
            f" AND ctid = ANY(ARRAY(SELECT tid FROM batch)){{guard}} RETURNING 1)"
            f" SELECT (SELECT count(*) FROM done), last.* FROM"
            f" (SELECT {cols} FROM batch ORDER BY {', '.join(f'{_q(k)} DESC' for k in keys)} LIMIT 1) last"
        )

    return _Statement(sql(""), sql(after))


def _unlink_statements(table: TenantTable, guard: str) -> list[_Statement]:
    """For each self-reference with nullable columns: set them NULL, a batch at a time."""
    statements = []
    nullable = {col.name for col in table.columns if col.nullable}
    for fk in table.self_references:
        own = [name for name in fk.columns if name != "instance_id"]
        if not own or not set(own) <= nullable:
            continue
        sets = ", ".join(f"{_q(name)} = NULL" for name in own)
        some = " OR ".join(f"{_q(name)} IS NOT NULL" for name in own)
        action = f"UPDATE {table.qualified} SET {sets}"
        if _has_keys(table):
            statement = _keyset(table, f" AND ({some})", action)
            statements.append(
                _Statement(statement.sql.format(guard=guard), (statement.next_sql or "").format(guard=guard))
            )
        else:
            statements.append(
                _Statement(
                    f"{action} WHERE instance_id = :iid"
                    f" AND ctid = ANY(ARRAY(SELECT ctid FROM {table.qualified}"
                    f" WHERE instance_id = :iid AND ({some}) LIMIT :n)){guard}"
                )
            )
    return statements


def _has_keys(table: TenantTable) -> bool:
    return any(name != "instance_id" for name in table.primary_key)


def _delete_statement(table: TenantTable, guard: str) -> _Statement:
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
    if not leaves and _has_keys(table):
        statement = _keyset(table, "", f"DELETE FROM {table.qualified}")
        return _Statement(statement.sql.format(guard=guard), (statement.next_sql or "").format(guard=guard))
    # Leaves first (they change as rows go, so no keyset), or a table without a primary key.
    return _Statement(
        f"DELETE FROM {table.qualified} WHERE instance_id = :iid AND ctid = ANY(ARRAY(SELECT x.ctid"
        f" FROM {table.qualified} x"
        f" WHERE x.instance_id = :iid{''.join(leaves)} LIMIT :n)){guard}"
    )


class _Batches:
    """Runs batch statements, each in its own short transaction, and times the longest."""

    def __init__(
        self,
        engine: Engine,
        iid: uuid.UUID,
        batch_size: int,
        lock_timeout: dt.timedelta,
        pause: dt.timedelta,
        *,
        citus: bool = False,
    ) -> None:
        self.engine, self.iid, self.lock_timeout = engine, iid, lock_timeout
        # On Citus the row locks are taken on the worker that holds the tenant's shard: the
        # lock_timeout must go there too, which SET LOCAL does only with this setting (the
        # owner's sessions may not have it: `tenancy grant` may set it for the runtime role only).
        self.setup = f"SET LOCAL {PROPAGATE_SETTING} = 'local'" if citus else ""
        self.pause = pause.total_seconds()
        self.params: dict[str, Any] = {"iid": iid, "n": batch_size}
        self.longest = 0.0

    def run(
        self,
        table: TenantTable,
        statement: _Statement,
        *,
        counted: bool,
        on_rows: Callable[[int], None] | None = None,
    ) -> None:
        """Batches until one finds nothing. A keyset pass that did something is followed by a
        pass from the start: rows written behind it meanwhile (an erasure of an active tenant)
        or moved by a concurrent update are found too."""
        while True:
            key: tuple[Any, ...] | None = None
            total = 0
            while True:
                sql = statement.sql if key is None or statement.next_sql is None else statement.next_sql
                params = dict(self.params)
                if key is not None:
                    params.update({f"k{i}": value for i, value in enumerate(key)})
                n, key = self._one(
                    table.name, sql, params, counted=counted, keyset=statement.next_sql is not None
                )
                if n and on_rows is not None:
                    on_rows(n)
                total += n
                if key is None or (statement.next_sql is None and n == 0):
                    break
            if statement.next_sql is None or total == 0:
                return

    def _one(
        self, table: str, sql: str, params: dict[str, Any], *, counted: bool, keyset: bool
    ) -> tuple[int, tuple[Any, ...] | None]:
        """One batch: (rows, last key of the batch or None when it found no rows)."""
        timeout_ms = max(1, int(self.lock_timeout.total_seconds() * 1000))
        for attempt in range(_LOCK_RETRIES):
            try:
                started = time.monotonic()
                with self.engine.begin() as conn:
                    if self.setup:
                        conn.execute(text(self.setup))
                    conn.execute(text(f"SET LOCAL lock_timeout = {timeout_ms}"))
                    result = conn.execute(text(sql), params)
                    if keyset:
                        row = result.first()
                        n, key = (0, None) if row is None else (int(row[0]), tuple(row[1:]))
                    else:
                        n = int(result.rowcount)
                        key = () if n else None
                    if counted and n:
                        count_batch(conn, self.iid, table, n)
                self.longest = max(self.longest, time.monotonic() - started)
                if self.pause > 0 and n:
                    time.sleep(self.pause)
                return n, key
            except OperationalError as exc:
                if getattr(exc.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
                    raise
                time.sleep(0.05 * 2**attempt)
        raise LifecycleError(
            f"table {table!r}: could not take the locks of a purge batch within {self.lock_timeout} "
            f"({_LOCK_RETRIES} tries); another transaction holds them: run the purge again later"
        )


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
