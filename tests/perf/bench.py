"""What tenant isolation costs, as ratios of two variants measured in the same run.

Run from the repository root::

    .venv/bin/python -m tests.perf.bench                  # every figure, prints a table
    .venv/bin/python -m tests.perf.bench --quick --json bench.json --only orm,rls
    .venv/bin/python -m tests.perf.bench --pg-url postgresql://postgres@host:5432/postgres

PostgreSQL is found or started the way the test suite does it (``tenancy.testing.postgres``):
``--pg-url`` (a superuser URL), else ``TENANCY_TEST_PG_URL``, else 127.0.0.1:5432, else a
throwaway cluster. Each run creates its own databases and roles and drops them at the end.

Figures (``--only`` takes these names):

- ``orm``     1. tenant session vs plain session whose query names ``instance_id`` by hand
              (point lookup, 100-row scan, parent with children), and ORM vs raw psycopg.
- ``rls``     2. the same SQL as the runtime role under RLS vs the owner role (BYPASSRLS), and
              the sealed policy vs the policy before it (which trusted the setting alone),
              server-side per statement.
- ``trips``   3. network round trips and transactions per second of a tenant transaction vs
              the same transaction without a per-transaction tenant setting.
- ``tokens``  4. token resolution: a cached resolve; a miss against the emulator vs a bare
              ``requests`` POST to Token Info; 64 threads resolving one new token at once.
- ``sync``    5. ``tenancy.sync`` tenants per second, 1,000 tenants at 50 ms emulated latency,
              C = 1 (100 tenants), 8, 32 workers, vs a bare ``requests`` loop making the same
              HTTP calls at the same concurrency against the same emulator.
- ``memory``  6. peak RSS of a sync child process: 1,000 vs 10,000 vs 100,000 tenants
              (0 ms latency, so 100,000 take a few minutes, not hours).
- ``tenants`` 7. point lookup with 10 vs 10,000 tenants in the table.
- ``prepared`` 8. server-side prepared statements on (psycopg's default, kept on tenant
              engines) vs off, and what the binding's prepared-statement check costs.

Baselines that need RLS to see the tenant's rows without a per-transaction setting connect
with the binding fixed for the whole connection (libpq ``options=-c tenancy.instance_id=...
-c tenancy.seal=...``): same role, same policy, same rows, no extra statement.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import Engine, create_engine, event, select, text
from sqlalchemy.orm import Session, selectinload

from tenancy import TenantSessionFactory
from tenancy.postgres.binding import BIND_SQL, BindingKey, seal
from tenancy.postgres.isolation import SETTING_NAME, isolation_statements
from tenancy.postgres.roles import grant_runtime_role
from tenancy.testing.postgres import Database, fresh_database
from tests.perf.harness import Row, machine, render, timed_row, write_json
from tests.perf.models import BenchBase, Child, Item, LegacyItem, Parent
from tests.wire import RoundTripProxy

# The baseline: the policy before the sealed binding, which trusted the setting alone.
LEGACY_PREDICATE_SQL = f"instance_id = NULLIF(current_setting('{SETTING_NAME}', true), '')::uuid"

FIGURES = ("orm", "rls", "trips", "tokens", "sync", "memory", "tenants", "prepared")
NS = uuid.UUID("8a3c3f9e-6a55-4c1f-9a8e-0d4b1f7f2c11")


def tenant_ids(n: int) -> list[uuid.UUID]:
    """*n* deterministic tenant ids."""
    return [uuid.uuid5(NS, str(i)) for i in range(n)]


def libpq(url: str) -> str:
    """The SQLAlchemy psycopg URL as a libpq URL."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@dataclass
class Config:
    reps: int
    target_s: float
    quick: bool


@dataclass
class BenchDb:
    """A migrated benchmark database and its data shape."""

    db: Database
    tenants: list[uuid.UUID]
    items: int  # per tenant
    parents: int  # per tenant
    children: int  # per parent
    key: BindingKey

    def factory(self, engine: Engine) -> TenantSessionFactory:
        """A tenant session factory on *engine* holding the database's binding key."""
        return TenantSessionFactory(engine, binding_key=self.key)

    def pinned(self, tenant: uuid.UUID) -> dict[str, Any]:
        """connect_args fixing the sealed binding for a whole connection (baselines only)."""
        return {"options": f"-c tenancy.instance_id={tenant} -c tenancy.seal={seal(self.key, tenant)}"}


def load(db: Database, *, tenants: int, items: int, parents: int, children: int) -> BenchDb:
    """Create the benchmark tables (RLS on, via ``create_all``) and fill them as the owner."""
    ids = tenant_ids(tenants)
    owner = create_engine(db.admin_url)
    BenchBase.metadata.create_all(owner)
    with owner.begin() as connection:
        grant_runtime_role(connection, db.runtime)  # as `tenancy grant` does
    owner.dispose()
    with psycopg.connect(libpq(db.admin_url), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO bench_items (instance_id, id, name, value) "
            "SELECT t, g, 'item ' || g, g FROM unnest(%s::uuid[]) t, generate_series(1, %s) g",
            (ids, items),
        )
        if parents:
            conn.execute(
                "INSERT INTO bench_parents (instance_id, id, name) "
                "SELECT t, g, 'parent ' || g FROM unnest(%s::uuid[]) t, generate_series(1, %s) g",
                (ids, parents),
            )
            conn.execute(
                "INSERT INTO bench_children (instance_id, parent_id, value) "
                "SELECT t, p, c FROM unnest(%s::uuid[]) t, generate_series(1, %s) p, "
                "generate_series(1, %s) c",
                (ids, parents, children),
            )
        conn.execute("INSERT INTO bench_items_legacy SELECT * FROM bench_items")
        # Copies of the parent/child tables and bench_items_legacy under the policy before the
        # sealed binding, to measure what the seal costs per statement.
        for table in ("bench_parents", "bench_children"):
            conn.execute(f"CREATE TABLE {table}_legacy (LIKE {table} INCLUDING ALL)")
            conn.execute(f"INSERT INTO {table}_legacy SELECT * FROM {table}")
        for table in ("bench_items_legacy", "bench_parents_legacy", "bench_children_legacy"):
            for statement in isolation_statements(table, predicate=LEGACY_PREDICATE_SQL):
                conn.execute(statement)
            conn.execute(
                sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {}").format(
                    sql.Identifier(table), sql.Identifier(db.runtime)
                )
            )
        conn.execute("VACUUM ANALYZE")
        key = newest_key_of(conn)
    return BenchDb(db=db, tenants=ids, items=items, parents=parents, children=children, key=key)


def newest_key_of(conn: psycopg.Connection[Any]) -> BindingKey:
    """The database's binding key, read as the owner."""
    row = conn.execute(
        "SELECT key_id::text, key FROM tenancy.binding_keys"
        " WHERE retired_at IS NULL ORDER BY key_id DESC LIMIT 1"
    ).fetchone()
    assert row is not None
    return BindingKey(row[0], bytes(row[1]))


def cycle_ids(n: int) -> Callable[[], int]:
    it = itertools.cycle(range(1, n + 1))
    return lambda: next(it)


def lookup_txn(
    factory: TenantSessionFactory, model: Any, tenant: uuid.UUID, ids: Callable[[], int]
) -> Callable[[], object]:
    """A one-lookup tenant transaction: open a session, get one row by id, commit."""

    def run() -> object:
        with factory.for_instance(tenant) as s:
            obj = s.scalars(select(model).where(model.id == ids())).one()
            s.commit()
        return obj

    return run


# --------------------------------------------------------------------------- figure 1


def fig_orm(bdb: BenchDb, cfg: Config) -> list[Row]:
    """Tenant session vs hand-filtered plain session, same engine role, same rows."""
    t = bdb.tenants[0]
    rows: list[Row] = []
    with ExitStack() as stack:
        runtime = create_engine(bdb.db.runtime_url)
        pinned = create_engine(bdb.db.runtime_url, connect_args=bdb.pinned(t))
        stack.callback(runtime.dispose)
        stack.callback(pinned.dispose)
        scoped = bdb.factory(runtime).for_instance(t)
        plain = Session(pinned)
        stack.callback(scoped.close)
        stack.callback(plain.close)
        raw = psycopg.connect(libpq(bdb.db.runtime_url), **bdb.pinned(t))
        stack.callback(raw.close)
        fresh = {"populate_existing": True}

        nid = cycle_ids(bdb.items)

        def scoped_point() -> object:
            return scoped.scalars(select(Item).where(Item.id == nid()).execution_options(**fresh)).one()

        def plain_point() -> object:
            stmt = select(Item).where(Item.instance_id == t, Item.id == nid()).execution_options(**fresh)
            return plain.scalars(stmt).one()

        def raw_point() -> object:
            return raw.execute(
                "SELECT instance_id, id, name, value FROM bench_items WHERE instance_id = %s AND id = %s",
                (t, nid()),
            ).fetchone()

        def scoped_scan() -> object:
            return scoped.scalars(select(Item).execution_options(**fresh)).all()

        def plain_scan() -> object:
            return plain.scalars(select(Item).where(Item.instance_id == t).execution_options(**fresh)).all()

        def raw_scan() -> object:
            return raw.execute(
                "SELECT instance_id, id, name, value FROM bench_items WHERE instance_id = %s", (t,)
            ).fetchall()

        pid = cycle_ids(bdb.parents)

        def scoped_tree() -> object:
            stmt = select(Parent).where(Parent.id == pid()).options(selectinload(Parent.children))
            return scoped.scalars(stmt.execution_options(**fresh)).one()

        def plain_tree() -> object:
            stmt = (
                select(Parent)
                .where(Parent.instance_id == t, Parent.id == pid())
                .options(selectinload(Parent.children.and_(Child.instance_id == t)))
            )
            return plain.scalars(stmt.execution_options(**fresh)).one()

        assert len(scoped.scalars(select(Item)).all()) == len(plain_scan()) == bdb.items  # type: ignore[arg-type]
        assert len(scoped_tree().children) == len(plain_tree().children) == bdb.children  # type: ignore[attr-defined]
        kw: dict[str, Any] = {"reps": cfg.reps, "target_s": cfg.target_s}
        rows.append(
            timed_row(
                "1",
                "point lookup",
                "tenant session",
                scoped_point,
                "hand-filtered",
                plain_point,
                **kw,
                target=1.10,
            )
        )
        rows.append(
            timed_row(
                "1",
                f"{bdb.items}-row scan",
                "tenant session",
                scoped_scan,
                "hand-filtered",
                plain_scan,
                **kw,
                target=1.10,
            )
        )
        rows.append(
            timed_row(
                "1",
                f"parent + {bdb.children} children (selectin)",
                "tenant session",
                scoped_tree,
                "hand-filtered",
                plain_tree,
                **kw,
                target=1.10,
            )
        )

        def txn(model: Any) -> Callable[[], object]:
            return lookup_txn(bdb.factory(runtime), model, t, nid)

        rows.append(
            timed_row(
                "1",
                "ORM point-lookup transaction",
                "sealed policy",
                txn(Item),
                "setting-only policy (before)",
                txn(LegacyItem),
                **kw,
                target=1.10,
                note="same binding sent; only the policy differs",
            )
        )
        rows.append(
            timed_row("1", "point lookup", "hand-filtered ORM", plain_point, "raw psycopg", raw_point, **kw)
        )
        rows.append(
            timed_row(
                "1", f"{bdb.items}-row scan", "hand-filtered ORM", plain_scan, "raw psycopg", raw_scan, **kw
            )
        )
    return rows


# --------------------------------------------------------------------------- figure 2


def fig_rls(bdb: BenchDb, cfg: Config) -> list[Row]:
    """The same SQL through raw psycopg: runtime role under RLS vs the BYPASSRLS owner."""
    t = bdb.tenants[0]
    with ExitStack() as stack:
        rls = psycopg.connect(libpq(bdb.db.runtime_url), **bdb.pinned(t))
        bypass = psycopg.connect(libpq(bdb.db.admin_url))
        stack.callback(rls.close)
        stack.callback(bypass.close)
        point = "SELECT instance_id, id, name, value FROM bench_items WHERE instance_id = %s AND id = %s"
        scan = "SELECT instance_id, id, name, value FROM bench_items WHERE instance_id = %s"
        join = (
            "SELECT p.id, p.name, c.id, c.value FROM bench_parents p JOIN bench_children c "
            "ON c.instance_id = p.instance_id AND c.parent_id = p.id "
            "WHERE p.instance_id = %s AND p.id = %s"
        )
        nid, pid = cycle_ids(bdb.items), cycle_ids(bdb.parents)
        assert len(rls.execute(scan, (t,)).fetchall()) == len(bypass.execute(scan, (t,)).fetchall())
        alt_table(bdb, bypass)
        alt_scan = scan.replace("bench_items", "bench_items_alt")
        assert len(rls.execute(alt_scan, (t,)).fetchall()) == bdb.items
        kw: dict[str, Any] = {"reps": cfg.reps, "target_s": cfg.target_s, "target": 1.05}
        server = [
            server_row(rls, bypass, f"{bdb.items}-row scan", scan.replace("%s", f"'{t}'"), cfg),
            server_row(
                rls,
                bypass,
                f"{bdb.items}-row scan",
                scan.replace("%s", f"'{t}'"),
                cfg,
                rls_query=alt_scan.replace("%s", f"'{t}'"),
                label="RLS, '= ANY' policy (experiment)",
            ),
            server_row(rls, bypass, "point lookup", point.replace("%s", f"'{t}'", 1).replace("%s", "7"), cfg),
        ]
        # The sealed policy vs the one before it, both as the runtime role on the same connection.
        literal_point = point.replace("%s", f"'{t}'", 1).replace("%s", "7")
        for name, query in (
            ("point lookup", literal_point),
            (f"{bdb.items}-row scan", scan.replace("%s", f"'{t}'")),
            (f"parent JOIN {bdb.children} children", join.replace("%s", f"'{t}'", 1).replace("%s", "3")),
        ):
            legacy = query.replace("bench_items", "bench_items_legacy")
            legacy = legacy.replace("bench_parents", "bench_parents_legacy")
            legacy = legacy.replace("bench_children", "bench_children_legacy")
            server.append(policy_row(rls, name, query, legacy, cfg))
        server.append(
            policy_row(
                rls,
                "the check alone",
                "SELECT tenancy.current_instance_id()",
                "SELECT NULLIF(current_setting('tenancy.instance_id', true), '')::uuid",
                cfg,
            )
        )
        return [
            *server,
            timed_row(
                "2",
                f"{bdb.items}-row scan",
                "RLS, '= ANY(ARRAY[setting])' policy",
                lambda: rls.execute(alt_scan, (t,)).fetchall(),
                "BYPASSRLS",
                lambda: bypass.execute(scan, (t,)).fetchall(),
                reps=cfg.reps,
                target_s=cfg.target_s,
                note="experiment, not shipped",
            ),
            timed_row(
                "2",
                "point lookup",
                "RLS",
                lambda: rls.execute(point, (t, nid())).fetchone(),
                "BYPASSRLS",
                lambda: bypass.execute(point, (t, nid())).fetchone(),
                **kw,
            ),
            timed_row(
                "2",
                f"{bdb.items}-row scan",
                "RLS",
                lambda: rls.execute(scan, (t,)).fetchall(),
                "BYPASSRLS",
                lambda: bypass.execute(scan, (t,)).fetchall(),
                **kw,
            ),
            timed_row(
                "2",
                f"parent JOIN {bdb.children} children",
                "RLS",
                lambda: rls.execute(join, (t, pid())).fetchall(),
                "BYPASSRLS",
                lambda: bypass.execute(join, (t, pid())).fetchall(),
                **kw,
            ),
        ]


def samples_row(
    figure: str, name: str, a_label: str, sa: list[float], b_label: str, sb: list[float], note: str
) -> Row:
    """A row of per-run microseconds measured outside the harness (server-side loops)."""
    return Row(
        figure=figure,
        name=name,
        a_label=a_label,
        b_label=b_label,
        unit="us",
        a_min=min(sa),
        a_med=statistics.median(sa),
        b_min=min(sb),
        b_med=statistics.median(sb),
        note=note,
    )


def server_loop_us(conn: psycopg.Connection[Any], query: str, n: int) -> float:
    """Microseconds per run of *query* in a server-side PL/pgSQL loop of *n* (no round trips)."""
    t0 = time.perf_counter()
    conn.execute(f"DO $$ BEGIN FOR i IN 1..{n} LOOP PERFORM * FROM ({query}) q; END LOOP; END $$")
    conn.rollback()
    return (time.perf_counter() - t0) / n * 1e6


def server_row(
    rls: psycopg.Connection[Any],
    bypass: psycopg.Connection[Any],
    name: str,
    query: str,
    cfg: Config,
    *,
    rls_query: str | None = None,
    label: str = "RLS",
) -> Row:
    """RLS cost inside the server: a PL/pgSQL loop runs *query* N times, no network, no client.

    Loopback round trips on a shared 2-core machine jitter by more than the 5% target; this
    isolates what the policy itself adds (planner + executor), in microseconds per query.
    """
    n = 2_000 if cfg.quick else 10_000

    def run(conn: psycopg.Connection[Any]) -> float:
        return server_loop_us(conn, rls_query if conn is rls and rls_query else query, n)

    sa: list[float] = []
    sb: list[float] = []
    for i in range(cfg.reps):
        first, second = (rls, bypass) if i % 2 == 0 else (bypass, rls)
        x, y = run(first), run(second)
        sa.append(x if first is rls else y)
        sb.append(y if first is rls else x)
    return samples_row(
        "2", f"{name}, server side", label, sa, "BYPASSRLS", sb, f"PL/pgSQL loop of {n:,}, no round trip"
    )


def policy_row(conn: psycopg.Connection[Any], name: str, sealed: str, legacy: str, cfg: Config) -> Row:
    """Sealed vs the earlier policy, per statement inside the server (as :func:`server_row`)."""
    n = 2_000 if cfg.quick else 10_000
    assert len(conn.execute(sealed).fetchall()) == len(conn.execute(legacy).fetchall()) > 0
    conn.rollback()

    def run(query: str) -> float:
        return server_loop_us(conn, query, n)

    sa: list[float] = []
    sb: list[float] = []
    for i in range(cfg.reps):
        if i % 2 == 0:
            sa.append(run(sealed))
            sb.append(run(legacy))
        else:
            sb.append(run(legacy))
            sa.append(run(sealed))
    delta = statistics.median(sa) - statistics.median(sb)
    row = samples_row(
        "2",
        f"{name}, server side",
        "sealed policy",
        sa,
        "setting-only policy (before)",
        sb,
        f"+{delta:.1f} us per statement; loop of {n:,}",
    )
    row.extra["delta_us"] = delta
    return row


def alt_table(bdb: BenchDb, owner: psycopg.Connection[Any]) -> None:
    """bench_items_alt: a copy of bench_items whose policy reads the setting as ``= ANY(ARRAY[..])``.

    With the shipped policy, a query that also says ``instance_id = $1`` (as every scoped ORM
    query does) lets the planner merge both into one equivalence class and put a gating
    Result (one-time filter) over a bitmap scan; ``= ANY`` is not merged, so the plan stays
    a plain index scan. Measured here only: the policy text is the isolation layer's.
    """
    setting = "NULLIF(current_setting('tenancy.instance_id', true), '')::uuid"
    owner.execute("CREATE TABLE IF NOT EXISTS bench_items_alt (LIKE bench_items INCLUDING ALL)")
    owner.execute("INSERT INTO bench_items_alt SELECT * FROM bench_items ON CONFLICT DO NOTHING")
    owner.execute("ALTER TABLE bench_items_alt ENABLE ROW LEVEL SECURITY")
    owner.execute("ALTER TABLE bench_items_alt FORCE ROW LEVEL SECURITY")
    owner.execute("DROP POLICY IF EXISTS alt ON bench_items_alt")
    owner.execute(
        f"CREATE POLICY alt ON bench_items_alt USING (instance_id = ANY (ARRAY[{setting}])) "
        f"WITH CHECK (instance_id = ANY (ARRAY[{setting}]))"
    )
    owner.execute(sql.SQL("GRANT SELECT ON bench_items_alt TO {}").format(sql.Identifier(bdb.db.runtime)))
    owner.execute("ANALYZE bench_items_alt")
    owner.commit()


# --------------------------------------------------------------------------- figure 3


@contextmanager
def proxied(url: str) -> Iterator[tuple[str, RoundTripProxy]]:
    """*url* rewritten to go through a round-trip-counting proxy."""
    u = psycopg.conninfo.conninfo_to_dict(libpq(url))
    with RoundTripProxy(str(u.get("host", "127.0.0.1")), int(str(u.get("port", 5432)))) as proxy:
        head, _, rest = url.partition("@")
        tail = rest.split("/", 1)[1]
        yield f"{head}@127.0.0.1:{proxy.port}/{tail}", proxy


class PlainConnection(psycopg.Connection[Any]):
    """A psycopg subclass tenancy leaves alone: its sessions send the setting as a statement."""


def separate_statement_engine(url: str) -> Engine:
    """An engine whose tenant sessions send the setting as a statement of its own, as before
    the BEGIN optimisation (the 'before' of before/after)."""
    dsn = libpq(url)
    return create_engine("postgresql+psycopg://", creator=lambda: PlainConnection.connect(dsn))


def reset_all(dbapi_connection: Any, connection_record: Any) -> None:
    """Reset the session settings of a returned connection (one more round trip per checkout);
    measured only: tenancy does not do it (a session-level setting binds nothing anyway)."""
    driver = getattr(dbapi_connection, "driver_connection", dbapi_connection)
    if driver.closed:
        return
    driver.autocommit = True
    try:
        driver.execute("RESET ALL")
    finally:
        driver.autocommit = False


def fig_trips(bdb: BenchDb, cfg: Config) -> list[Row]:
    """A one-lookup tenant transaction vs the same transaction on a pinned connection."""
    t = bdb.tenants[0]
    rows: list[Row] = []
    nid = cycle_ids(bdb.items)

    def tenant_txn(factory: TenantSessionFactory) -> Callable[[], object]:
        return lookup_txn(factory, Item, t, nid)

    def plain_txn(engine: Engine) -> Callable[[], object]:
        def run() -> object:
            with Session(engine) as s:
                obj = s.scalars(select(Item).where(Item.instance_id == t, Item.id == nid())).one()
                s.commit()
            return obj

        return run

    def core_set_txn(engine: Engine) -> Callable[[], object]:
        stmt = text("SELECT id FROM bench_items WHERE instance_id = :t AND id = :i")
        setting = text(
            "SELECT set_config('tenancy.instance_id', :t, true), set_config('tenancy.seal', :s, true)"
        )
        tenant_seal = seal(bdb.key, t)

        def run() -> object:
            with engine.begin() as c:
                c.execute(setting, {"t": str(t), "s": tenant_seal})
                return c.execute(stmt, {"t": t, "i": nid()}).scalar_one()

        return run

    def core_txn(engine: Engine) -> Callable[[], object]:
        stmt = text("SELECT id FROM bench_items WHERE instance_id = :t AND id = :i")

        def run() -> object:
            with engine.begin() as c:
                return c.execute(stmt, {"t": t, "i": nid()}).scalar_one()

        return run

    # Round trips, counted on the wire by a proxy in front of PostgreSQL.
    n = 50
    with proxied(bdb.db.runtime_url) as (rurl, rproxy), proxied(bdb.db.runtime_url) as (purl, pproxy):
        runtime = create_engine(rurl)
        pinned = create_engine(purl, connect_args=bdb.pinned(t))
        separate = separate_statement_engine(rurl)
        try:
            tenant_run, plain_run = tenant_txn(bdb.factory(runtime)), plain_txn(pinned)
            core_set_run, core_run = core_set_txn(runtime), core_txn(pinned)
            separate_run = tenant_txn(bdb.factory(separate))
            for label, a, b in (
                ("ORM txn, 1 lookup", tenant_run, plain_run),
                ("ORM txn, 1 lookup, separate statement", separate_run, plain_run),
                ("Core txn, 1 lookup", core_set_run, core_run),
            ):
                for _ in range(8):  # connect, role check, psycopg preparing after 5 runs: not counted
                    a()
                    b()
                rproxy.reset()
                pproxy.reset()
                for _ in range(n):
                    a()
                    b()
                a_rt, b_rt = rproxy.round_trips / n, pproxy.round_trips / n
                a_name = "set_config statement" if label.startswith("Core") else "tenant session"
                rows.append(
                    Row(
                        figure="3",
                        name=f"round trips per {label}",
                        a_label=a_name,
                        b_label="no setting",
                        unit="trips",
                        a_min=a_rt,
                        a_med=a_rt,
                        b_min=b_rt,
                        b_med=b_rt,
                        note="counted on the wire",
                    )
                )
        finally:
            runtime.dispose()
            pinned.dispose()
            separate.dispose()

    # Time per transaction (1/TPS), direct loopback connections, one client.
    runtime = create_engine(bdb.db.runtime_url)
    pinned = create_engine(bdb.db.runtime_url, connect_args=bdb.pinned(t))
    separate = separate_statement_engine(bdb.db.runtime_url)
    try:
        kw: dict[str, Any] = {"reps": cfg.reps, "target_s": cfg.target_s}
        rows.append(
            timed_row(
                "3",
                "ORM txn, 1 lookup (1/TPS)",
                "setting as own statement",
                tenant_txn(bdb.factory(separate)),
                "setting with BEGIN",
                tenant_txn(bdb.factory(runtime)),
                **kw,
                note="before/after",
            )
        )
        rows.append(
            timed_row(
                "3",
                "ORM txn, 1 lookup (1/TPS)",
                "tenant session",
                tenant_txn(bdb.factory(runtime)),
                "plain, no setting",
                plain_txn(pinned),
                **kw,
            )
        )
        discarding = create_engine(bdb.db.runtime_url)
        event.listen(discarding, "checkin", reset_all)
        try:
            rows.append(
                timed_row(
                    "3",
                    "ORM txn, 1 lookup (1/TPS)",
                    "RESET ALL at check-in",
                    tenant_txn(bdb.factory(discarding)),
                    "shipped (no reset)",
                    tenant_txn(bdb.factory(runtime)),
                    **kw,
                    note="what resetting server state on check-in would cost",
                )
            )
        finally:
            discarding.dispose()
        rows.append(
            timed_row(
                "3",
                "Core txn, 1 lookup (1/TPS)",
                "set_config statement",
                core_set_txn(runtime),
                "no setting",
                core_txn(pinned),
                **kw,
            )
        )
    finally:
        runtime.dispose()
        pinned.dispose()
        separate.dispose()
    return rows


# --------------------------------------------------------------------------- figure 4


def fig_tokens(cfg: Config) -> list[Row]:
    """TokenResolver: cached hit, miss over HTTP, and 64 concurrent first resolutions."""
    import hashlib
    import threading

    import requests

    from tenancy.emulator import Emulator
    from tenancy.wix.client import WixClient
    from tenancy.wix.resolver import TokenResolver

    rows: list[Row] = []
    kw: dict[str, Any] = {"reps": cfg.reps, "target_s": cfg.target_s}
    with Emulator(sites=4) as emu, requests.Session() as http:
        iid = emu.instance_ids[0]
        resolver = TokenResolver(WixClient(emu.app_id, emu.app_secret, base_url=emu.base_url, http=http))
        token = emu.mint_token(iid)
        resolver.resolve(token)
        cache = {hashlib.sha256(token.encode()).digest(): token}
        header = f"Bearer {token}"
        rows.append(
            timed_row(
                "4",
                "cached resolve",
                "TokenResolver.resolve",
                lambda: resolver.resolve(header),
                "sha256 + dict lookup",
                lambda: cache.get(hashlib.sha256(token.encode()).digest()),
                **kw,
                limit=5.0,
            )
        )

        def miss() -> object:
            return resolver.resolve(emu.mint_token(iid))

        url = f"{emu.base_url}/oauth2/token-info"

        def bare() -> object:
            reply = http.post(url, json={"token": emu.mint_token(iid)}, timeout=10)
            reply.raise_for_status()
            return reply.json()

        rows.append(
            timed_row(
                "4",
                "miss (emulator, 0 ms latency)",
                "TokenResolver.resolve",
                miss,
                "bare requests POST",
                bare,
                **kw,
            )
        )

        threads, rounds = 64, (3 if cfg.quick else 7)
        emu.set_latency(0.05)
        counts: list[int] = []
        for _ in range(rounds):
            fresh = emu.mint_token(iid)
            barrier = threading.Barrier(threads)
            errors: list[BaseException] = []

            def worker(
                tok: str = fresh, gate: threading.Barrier = barrier, errs: list[BaseException] = errors
            ) -> None:
                gate.wait()
                try:
                    resolver.resolve(tok)
                except BaseException as exc:
                    errs.append(exc)

            before = emu.count("token_info")
            pool = [threading.Thread(target=worker) for _ in range(threads)]
            for t in pool:
                t.start()
            for t in pool:
                t.join()
            if errors:
                raise errors[0]
            counts.append(emu.count("token_info") - before)
        emu.set_latency(0.0)
        rows.append(
            Row(
                figure="4",
                name=f"{threads} threads resolve one new token",
                a_label="Token Info requests",
                b_label="threads",
                unit="requests",
                a_min=min(counts),
                a_med=float(sorted(counts)[len(counts) // 2]),
                b_min=threads,
                b_med=threads,
                limit=1,
                note=f"50 ms latency, {rounds} rounds, max {max(counts)}",
            )
        )
    return rows


# --------------------------------------------------------------------------- figure 7


def fig_tenants(small: BenchDb, large: BenchDb, cfg: Config) -> list[Row]:
    """A tenant session's point lookup with 10 vs 10,000 tenants sharing the table."""
    with ExitStack() as stack:
        sessions = []
        for bdb in (large, small):
            engine = create_engine(bdb.db.runtime_url)
            stack.callback(engine.dispose)
            s = bdb.factory(engine).for_instance(bdb.tenants[len(bdb.tenants) // 2])
            stack.callback(s.close)
            sessions.append(s)
        nid = cycle_ids(small.items)

        def lookup(s: Session) -> Callable[[], object]:
            return lambda: s.scalars(
                select(Item).where(Item.id == nid()).execution_options(populate_existing=True)
            ).one()

        return [
            timed_row(
                "7",
                "point lookup, tenant session",
                f"{len(large.tenants):,} tenants",
                lookup(sessions[0]),
                f"{len(small.tenants)} tenants",
                lookup(sessions[1]),
                reps=cfg.reps,
                target_s=cfg.target_s,
                target=1.2,
                note=f"{large.items} rows per tenant",
            )
        ]


# --------------------------------------------------------------------------- figure 8


def fig_prepared(bdb: BenchDb, cfg: Config) -> list[Row]:
    """Server-side prepared statements off (tenant engines) vs on (psycopg's default), same SQL."""
    t = bdb.tenants[0]
    rows: list[Row] = []
    kw: dict[str, Any] = {"reps": cfg.reps, "target_s": cfg.target_s}
    nid = cycle_ids(bdb.items)
    with ExitStack() as stack:
        conns = {}
        for name, threshold in (("off", None), ("on", 0)):
            conn = psycopg.connect(libpq(bdb.db.runtime_url), **bdb.pinned(t))
            conn.prepare_threshold = threshold
            stack.callback(conn.close)
            conns[name] = conn
        point = "SELECT instance_id, id, name, value FROM bench_items WHERE instance_id = %s AND id = %s"
        scan = "SELECT instance_id, id, name, value FROM bench_items WHERE instance_id = %s"
        for label, query, args in (
            ("point lookup (raw psycopg)", point, lambda: (t, nid())),
            (f"{bdb.items}-row scan (raw psycopg)", scan, lambda: (t,)),
        ):
            rows.append(
                timed_row(
                    "8",
                    label,
                    "prepared on",
                    lambda q=query, a=args: conns["on"].execute(q, a()).fetchall(),
                    "prepared off",
                    lambda q=query, a=args: conns["off"].execute(q, a()).fetchall(),
                    **kw,
                )
            )
        engines = {}
        for name, threshold in (("off", None), ("on", 5)):
            engine = create_engine(bdb.db.runtime_url, connect_args={"prepare_threshold": threshold})
            stack.callback(engine.dispose)
            engines[name] = engine

        def tenant_point(engine: Engine) -> Callable[[], object]:
            return lookup_txn(bdb.factory(engine), Item, t, nid)

        rows.append(
            timed_row(
                "8",
                "ORM point-lookup transaction, tenant session",
                "prepared on (shipped)",
                tenant_point(engines["on"]),
                "prepared off",
                tenant_point(engines["off"]),
                reps=cfg.reps,
                target_s=cfg.target_s,
                note="psycopg prepare_threshold 5 vs None",
            )
        )
        # What the taint check (no SQL-made prepared statement) adds to the binding statement.
        conn = conns["off"]
        bind = BIND_SQL.replace("$1", f"'{t}'").replace("$2", "'x'")
        plain_bind = bind.split(", NOT EXISTS")[0]
        n = 2_000 if cfg.quick else 10_000

        with_check = [server_loop_us(conn, bind, n) for _ in range(cfg.reps)]
        without = [server_loop_us(conn, plain_bind, n) for _ in range(cfg.reps)]
        rows.append(
            samples_row(
                "8",
                "binding statement, server side",
                "with prepared-statement check",
                with_check,
                "without",
                without,
                f"PL/pgSQL loop of {n:,}",
            )
        )
    return rows


# --------------------------------------------------------------------------- main


def run(only: list[str], cfg: Config) -> list[Row]:
    rows: list[Row] = []
    with ExitStack() as stack:
        if {"orm", "rls", "trips", "prepared"} & set(only):
            db = stack.enter_context(fresh_database("tenancy_bench"))
            bdb = load(db, tenants=10, items=100, parents=20, children=10)
            for name, fig in (
                ("orm", fig_orm),
                ("rls", fig_rls),
                ("trips", fig_trips),
                ("prepared", fig_prepared),
            ):
                if name in only:
                    print(f"figure {name}...", file=sys.stderr, flush=True)
                    rows += fig(bdb, cfg)
        if "tokens" in only:
            print("figure tokens...", file=sys.stderr, flush=True)
            rows += fig_tokens(cfg)
        if "sync" in only:
            from tests.perf.sync_figs import fig_sync_throughput

            print("figure sync...", file=sys.stderr, flush=True)
            rows += fig_sync_throughput(quick=cfg.quick, reps=2 if cfg.quick else 3)
        if "memory" in only:
            from tests.perf.sync_figs import fig_sync_memory

            print("figure memory...", file=sys.stderr, flush=True)
            rows += fig_sync_memory(quick=cfg.quick)
        if "tenants" in only:
            print("figure tenants (loading)...", file=sys.stderr, flush=True)
            many = 2_000 if cfg.quick else 10_000
            small = load(
                stack.enter_context(fresh_database("tenancy_bench")),
                tenants=10,
                items=50,
                parents=0,
                children=0,
            )
            large = load(
                stack.enter_context(fresh_database("tenancy_bench")),
                tenants=many,
                items=50,
                parents=0,
                children=0,
            )
            rows += fig_tenants(small, large, cfg)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.perf.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument(
        "--pg-url", metavar="URL", help="a PostgreSQL superuser URL (default: as the tests find one)"
    )
    p.add_argument("--only", metavar="NAMES", help=f"comma-separated figures: {','.join(FIGURES)}")
    p.add_argument("--quick", action="store_true", help="fewer repetitions and shorter batches (a smoke run)")
    p.add_argument("--reps", type=int, help="repetitions per variant (default 15, quick 5)")
    args = p.parse_args(argv)
    if args.pg_url:
        os.environ["TENANCY_TEST_PG_URL"] = args.pg_url
    only = args.only.split(",") if args.only else list(FIGURES)
    unknown = set(only) - set(FIGURES)
    if unknown:
        p.error(f"unknown figure(s): {', '.join(sorted(unknown))}")
    cfg = Config(
        reps=args.reps or (5 if args.quick else 15), target_s=0.02 if args.quick else 0.1, quick=args.quick
    )
    rows = run(only, cfg)
    meta = machine()
    print(
        f"\n{meta['date']} · {meta['cpus']} CPUs · Python {meta['python']} · SQLAlchemy "
        f"{meta['sqlalchemy']} · psycopg {meta['psycopg']} · {cfg.reps} reps\n"
    )
    print(render(rows))
    if args.json:
        write_json(args.json, rows, meta)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
