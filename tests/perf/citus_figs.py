"""Citus figures: a tenant's point lookup, the sync with several processes, the sync vs bare HTTP.

``python -m tests.perf.citus_figs [--quick] [--json PATH]``; needs Citus installed for the
local PostgreSQL (figures C1 and C2 start their own coordinator and two workers, as the Citus
tests do) and a PostgreSQL for C1's and C3's plain side (as the tests find one).

- C1: a tenant session's point lookup by primary key (open the session, ``get()``, close) on
  Citus (router-executed: one shard, on a worker) vs the same on plain PostgreSQL; both with
  the sealed binding, interleaved.
- C2: ``tenancy sync`` tenants per second on Citus with ``tenants`` distributed: three
  processes vs one, each with 4 workers and ``--rate 1000`` (the default, 50 requests a second
  per process, would cap each at 25 tenants/s), against the emulator (20 ms per answer). Time from
  the first run's start to the last one's end, as the runs report it (interpreter start-up
  left out).
- C3: on plain PostgreSQL, ``tenancy.sync`` vs a bare ``requests`` loop doing the same HTTP
  calls, 32 workers, 50 ms per answer (figure 5 of ``tests.perf.bench``, at 32 workers).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, text

from tenancy import TenantSessionFactory
from tenancy.emulator import Emulator
from tenancy.postgres.binding import newest_key
from tenancy.postgres.citus import distribute_tenant_table
from tenancy.tenant_sync.store import register_instances
from tenancy.testing.postgres import fresh_database
from tests.citus.cluster import citus_cluster, citus_missing
from tests.citus.models import CitusBase, Folder, Note
from tests.conftest import migrate
from tests.perf.harness import Row, compare, machine, render, write_json
from tests.perf.sync_figs import sync_vs_bare
from tests.sync_helpers import start_sync

TENANT = uuid.UUID("0c17a5a0-0000-4000-8000-0000000000c1")


def _populate(admin: Engine, *, citus: bool) -> int:
    """Tables of the Citus tests' models (distributed on Citus), 40 tenants of 50 notes each."""
    with admin.begin() as conn:
        CitusBase.metadata.create_all(conn, tables=[Folder.__table__, Note.__table__])  # type: ignore[list-item]
        if citus:
            distribute_tenant_table(conn, "folders")
            distribute_tenant_table(conn, "notes")
        tenants = [TENANT, *(uuid.uuid4() for _ in range(39))]
        register_instances(conn, tenants, now=dt.datetime.now(dt.UTC))
        conn.execute(
            text(
                "INSERT INTO folders (instance_id, name) SELECT t, 'inbox' FROM unnest(CAST(:t AS uuid[])) t"
            ),
            {"t": tenants},
        )
        conn.execute(
            text(
                "INSERT INTO notes (instance_id, id, folder_id, title)"
                " SELECT f.instance_id, gen_random_uuid(), f.id, 'note ' || n"
                " FROM folders f, generate_series(1, 50) n"
            )
        )
        note_id = conn.execute(
            text("SELECT id FROM notes WHERE instance_id = :t LIMIT 1"), {"t": TENANT}
        ).scalar_one()
        conn.execute(text("ANALYZE folders"))
        conn.execute(text("ANALYZE notes"))
    return note_id  # type: ignore[no-any-return]


def _lookup(runtime: Engine, admin: Engine, note_id: Any) -> Any:
    with admin.connect() as conn:
        key = newest_key(conn)
    sessions = TenantSessionFactory(runtime, binding_key=key)

    def one() -> None:
        with sessions.for_instance(TENANT) as session:
            note = session.get(Note, (TENANT, note_id))
            assert note is not None
            session.expunge_all()

    one()
    return one


@contextmanager
def _citus_db() -> Iterator[tuple[Any, Engine]]:
    with citus_cluster() as cluster:
        admin = create_engine(cluster.admin_url, pool_size=2)
        migrate(admin, runtime_role=cluster.runtime)
        try:
            yield cluster, admin
        finally:
            admin.dispose()


def fig_point_lookup(*, reps: int, target_s: float) -> Row:
    """C1: one tenant session's get() on Citus vs plain PostgreSQL."""
    with _citus_db() as (cluster, citus_admin), fresh_database("tenancy_bench_citus") as db:
        pg_admin = create_engine(db.admin_url, pool_size=2)
        migrate(pg_admin, runtime_role=db.runtime)
        citus_runtime = create_engine(cluster.runtime_url, pool_size=1)
        pg_runtime = create_engine(db.runtime_url, pool_size=1)
        try:
            a = _lookup(citus_runtime, citus_admin, _populate(citus_admin, citus=True))
            b = _lookup(pg_runtime, pg_admin, _populate(pg_admin, citus=False))
            with citus_admin.connect() as conn:
                plan = conn.execute(
                    text("EXPLAIN SELECT * FROM notes WHERE instance_id = :t"), {"t": TENANT}
                ).scalars()
                router = any("Task Count: 1" in line for line in plan)
            sa, sb, inner = compare(a, b, reps=reps, target_s=target_s)
        finally:
            for engine in (citus_runtime, pg_runtime, pg_admin):
                engine.dispose()
    return Row(
        figure="C1",
        name="tenant session: open, get() by primary key, close",
        a_label="Citus (router, 2 workers)",
        b_label="plain PostgreSQL",
        unit="us",
        a_min=min(sa) * 1e6,
        a_med=statistics.median(sa) * 1e6,
        b_min=min(sb) * 1e6,
        b_med=statistics.median(sb) * 1e6,
        note=f"router-executed: {router}; {inner} calls per batch; sealed binding on both",
    )


def _sync_processes(emu: Emulator, url: str, processes: int) -> float:
    """Seconds from the first run's start to the last one's end (as the runs report them)."""
    # --rate: the default (50 Wix requests a second per process) would be what is measured.
    args = ("--concurrency", "4", "--rate", "1000", "--json")
    procs = [start_sync(emu, url, *args) for _ in range(processes)]
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"sync exited {proc.returncode}: {err[-2000:]}")
        reports.append(json.loads(out))
    start = min(dt.datetime.fromisoformat(r["started_at"]) for r in reports)
    end = max(dt.datetime.fromisoformat(r["finished_at"]) for r in reports)
    synced = sum(r["synced"] for r in reports)
    if synced != len(emu.instance_ids):
        raise RuntimeError(f"synced {synced} of {len(emu.instance_ids)}")
    return (end - start).total_seconds()


def fig_sync_processes(*, quick: bool, reps: int) -> Row:
    """C2: sync tenants per second on Citus, three processes vs one."""
    size = 90 if quick else 240
    with _citus_db() as (_cluster, admin), Emulator(sites=size, seed=31, latency=0.02) as emu:
        with admin.begin() as conn:
            register_instances(conn, [uuid.UUID(i) for i in emu.instance_ids], now=dt.datetime.now(dt.UTC))
        url = admin.url.render_as_string(hide_password=False)
        three: list[float] = []
        one: list[float] = []
        for i in range(reps):
            for processes in (3, 1) if i % 2 == 0 else (1, 3):
                with admin.begin() as conn:  # every tenant due again
                    conn.execute(text("UPDATE tenants SET last_synced_at = NULL, last_attempt_at = NULL"))
                (three if processes == 3 else one).append(_sync_processes(emu, url, processes))
    return Row(
        figure="C2",
        name=f"tenancy sync on Citus, {size} tenants, 4 workers per process, 20 ms latency",
        a_label="3 processes",
        b_label="1 process",
        unit="s",
        a_min=min(three),
        a_med=statistics.median(three),
        b_min=min(one),
        b_med=statistics.median(one),
        note=(
            f"{size / statistics.median(three):.0f} vs {size / statistics.median(one):.0f} tenants/s; "
            "each tenant fetched once (runs fail otherwise)"
        ),
        extra={"tenants_per_s_3": [size / x for x in three], "tenants_per_s_1": [size / x for x in one]},
    )


def fig_sync_vs_bare(*, quick: bool, reps: int) -> Row:
    """C3: plain PostgreSQL, sync vs the bare requests loop, 32 workers, 50 ms latency."""
    size, latency = (150 if quick else 300), 0.05
    with Emulator(sites=size, seed=5, latency=latency) as emu:
        return sync_vs_bare(emu, size, 32, reps=reps, latency=latency, figure="C3")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.perf.citus_figs", description=__doc__.split("\n\n")[0])
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    p.add_argument("--only", default="C1,C2,C3", help="comma-separated figures (C1,C2,C3)")
    args = p.parse_args(argv)
    only = set(args.only.split(","))
    missing = citus_missing()
    if missing and only & {"C1", "C2"}:
        print(f"Citus figures need Citus: {missing}", file=sys.stderr)
        return 2
    rows = []
    reps = 3 if args.quick else 5
    t0 = time.perf_counter()
    if "C1" in only:
        rows.append(fig_point_lookup(reps=reps * 3, target_s=0.05 if args.quick else 0.2))
    if "C2" in only:
        rows.append(fig_sync_processes(quick=args.quick, reps=reps if not args.quick else 2))
    if "C3" in only:
        rows.append(fig_sync_vs_bare(quick=args.quick, reps=reps))
    meta = machine()
    print(f"\n{meta['date']} · {meta['cpus']} CPUs · {time.perf_counter() - t0:.0f} s\n")
    print(render(rows))
    if args.json:
        write_json(args.json, rows, meta)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
