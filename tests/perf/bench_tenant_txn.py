"""Whole tenant transactions side by side: what a user of each approach pays (issue 20).

Run from the repository root::

    .venv/bin/python -m tests.perf.bench_tenant_txn                 # 6 rounds x 2,000 transactions
    .venv/bin/python -m tests.perf.bench_tenant_txn --quick --json txn.json
    .venv/bin/python -m tests.perf.bench_tenant_txn --only sync,trips --rounds 9 --txns 3000

1,000 tenants x 100 rows; every transaction a different tenant from the one before it (the
binding, the seal and the rows change each time, as they do behind a web app); each one whole:
open a session, run the query, commit, close. The variants run interleaved (round *r* starts
with variant *r* mod *n*) and each figure is the median of the per-round transactions per
second, so the drift of a shared machine hits every variant alike. Variants:

- ``tenancy``    a ``TenantSessionFactory`` session: ORM guard, sealed binding with ``BEGIN``,
                 session reset, RLS under the sealed policy.
- ``none``       no isolation: a plain ``Session`` whose queries name ``instance_id`` by hand,
                 on a copy of the table without RLS (the floor).
- ``textbook``   the recipe most guides give: hand-filtered ORM criteria plus a
                 ``set_config('app.tenant_id', ...)`` statement per transaction (``after_begin``)
                 and a policy trusting that setting (anyone can forge it).
- ``sqlalchemy-tenants`` (only when the package is importable): a role per tenant,
                 ``SET SESSION ROLE`` per session, policy on ``current_user``.

Figures (``--only``): ``sync`` (psycopg: point lookup, 100-row scan, insert, 8 threads),
``async`` (tenancy's ``AsyncTenantSessionFactory`` vs a plain ``AsyncSession`` on the same
driver: psycopg, and asyncpg when installed), ``trips`` (network round trips per point
transaction, per driver, counted on the wire by ``tests/wire.py``).

Why this differs from ``tests.perf.bench`` figure 1 (the README's old "0.97x"): that figure
times statements inside one long-open session of one tenant, so the per-transaction work
(binding, reset, seal, commit) is paid once for thousands of statements, and its baseline ran
under RLS too (a pinned binding). Here every transaction pays it, against a table without RLS.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import psycopg
from sqlalchemy import Engine, Integer, MetaData, String, Uuid, create_engine, event, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, SessionTransaction, mapped_column

from tenancy import TenantScoped, TenantSessionFactory
from tenancy.models import NAMING_CONVENTION
from tenancy.postgres.binding import BindingKey
from tenancy.postgres.roles import grant_runtime_role
from tenancy.testing.postgres import Database, fresh_database
from tests.perf.harness import machine
from tests.wire import RoundTripProxy

FIGURES = ("sync", "async", "trips")
NS = uuid.UUID("5b0e6f0c-2d61-4a59-9d55-3e1c0a7b9f21")


class TxnBase(DeclarativeBase):
    """The benchmark's own metadata: ``create_all`` makes only these tables."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class TItem(TenantScoped, TxnBase):
    """tenancy's table: RLS under the sealed policy (``create_all`` enables it)."""

    __tablename__ = "txn_items"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[int] = mapped_column(Integer)


class _Columns:
    instance_id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[int] = mapped_column(Integer)


class PlainItem(_Columns, TxnBase):
    """The same rows without RLS: no isolation but the application's own filter."""

    __tablename__ = "txn_items_plain"


class TextbookItem(_Columns, TxnBase):
    """The same rows under a policy that trusts ``app.tenant_id``."""

    __tablename__ = "txn_items_textbook"


TEXTBOOK_POLICY = (
    "CREATE POLICY textbook ON txn_items_textbook USING "
    "(instance_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)"
)


@dataclass
class Setup:
    db: Database
    tenants: list[uuid.UUID]
    rows: int
    key: BindingKey
    peers: dict[str, Any] = field(default_factory=dict)


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def load(db: Database, tenants: int, rows: int) -> Setup:
    """Create the three tables, fill each with tenants x rows as the owner, grant the runtime role."""
    ids = [uuid.uuid5(NS, str(i)) for i in range(tenants)]
    owner = create_engine(db.admin_url)
    TxnBase.metadata.create_all(owner)
    with owner.begin() as connection:
        grant_runtime_role(connection, db.runtime)
    owner.dispose()
    with psycopg.connect(libpq(db.admin_url), autocommit=True) as conn:
        for table in ("txn_items", "txn_items_plain", "txn_items_textbook"):
            conn.execute(
                f"INSERT INTO {table} (instance_id, id, name, value) "
                "SELECT t, g, 'item ' || g, g FROM unnest(%s::uuid[]) t, generate_series(1, %s) g",
                (ids, rows),
            )
        conn.execute("ALTER TABLE txn_items_textbook ENABLE ROW LEVEL SECURITY")
        conn.execute(TEXTBOOK_POLICY)
        for table in ("txn_items_plain", "txn_items_textbook"):
            conn.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO "{db.runtime}"')
        conn.execute("VACUUM ANALYZE")
        row = conn.execute(
            "SELECT key_id::text, key FROM tenancy.binding_keys WHERE retired_at IS NULL "
            "ORDER BY key_id DESC LIMIT 1"
        ).fetchone()
        assert row is not None
    return Setup(db=db, tenants=ids, rows=rows, key=BindingKey(row[0], bytes(row[1])))


# --------------------------------------------------------------------------- transactions

# One transaction: (tenant, sequence number) -> None.
Txn = Callable[[uuid.UUID, int], object]
_insert_ids = itertools.count(1_000_000)


def _pick(k: int, rows: int) -> int:
    return (k * 37) % rows + 1


def tenancy_txns(factory: TenantSessionFactory, rows: int) -> dict[str, Txn]:
    def point(t: uuid.UUID, k: int) -> object:
        with factory.for_instance(t) as s:
            s.scalars(select(TItem).where(TItem.id == _pick(k, rows))).one()
            s.commit()
        return None

    def scan(t: uuid.UUID, k: int) -> object:
        with factory.for_instance(t) as s:
            assert len(s.scalars(select(TItem)).all()) >= rows
            s.commit()
        return None

    def insert(t: uuid.UUID, k: int) -> object:
        with factory.for_instance(t) as s:
            s.add(TItem(id=next(_insert_ids), name="new", value=k))
            s.commit()
        return None

    return {"point": point, "scan": scan, "insert": insert}


def filtered_txns(engine: Engine, model: Any, rows: int) -> dict[str, Txn]:
    """Hand-filtered plain sessions (the floor, and the textbook recipe with its listener)."""

    def point(t: uuid.UUID, k: int) -> object:
        with Session(engine) as s:
            s.scalars(select(model).where(model.instance_id == t, model.id == _pick(k, rows))).one()
            s.commit()
        return None

    def scan(t: uuid.UUID, k: int) -> object:
        with Session(engine) as s:
            assert len(s.scalars(select(model).where(model.instance_id == t)).all()) >= rows
            s.commit()
        return None

    def insert(t: uuid.UUID, k: int) -> object:
        with Session(engine) as s:
            s.add(model(instance_id=t, id=next(_insert_ids), name="new", value=k))
            s.commit()
        return None

    return {"point": point, "scan": scan, "insert": insert}


class TextbookSession(Session):
    """A plain session that sets ``app.tenant_id`` in every transaction (the recipe's listener)."""

    tenant: uuid.UUID


_TEXTBOOK_SET = text("SELECT set_config('app.tenant_id', :t, true)")


@event.listens_for(TextbookSession, "after_begin")
def _textbook_begin(session: Session, transaction: SessionTransaction, connection: Any) -> None:
    connection.execute(_TEXTBOOK_SET, {"t": str(session.info["tenant"])})


def textbook_txns(engine: Engine, rows: int) -> dict[str, Txn]:
    def session(t: uuid.UUID) -> Session:
        s = TextbookSession(engine)
        s.info["tenant"] = t
        return s

    m = TextbookItem

    def point(t: uuid.UUID, k: int) -> object:
        with session(t) as s:
            s.scalars(select(m).where(m.instance_id == t, m.id == _pick(k, rows))).one()
            s.commit()
        return None

    def scan(t: uuid.UUID, k: int) -> object:
        with session(t) as s:
            assert len(s.scalars(select(m).where(m.instance_id == t)).all()) >= rows
            s.commit()
        return None

    def insert(t: uuid.UUID, k: int) -> object:
        with session(t) as s:
            s.add(m(instance_id=t, id=next(_insert_ids), name="new", value=k))
            s.commit()
        return None

    return {"point": point, "scan": scan, "insert": insert}


# --------------------------------------------------------------------------- sqlalchemy-tenants


@contextmanager
def sqlalchemy_tenants_peer(setup: Setup) -> Iterator[dict[str, Txn] | None]:
    """sqlalchemy-tenants' transactions, or None when it is not installed (never a dependency)."""
    try:
        from sqlalchemy_tenants.core import get_table_policy, get_tenant_role_name
        from sqlalchemy_tenants.managers import PostgresManager
    except ImportError:
        yield None
        return
    db = setup.db
    login = f"satenants_{uuid.uuid4().hex[:8]}"
    roles = [get_tenant_role_name(t) for t in setup.tenants]
    quoted = ", ".join(f'"{r}"' for r in roles)
    su = psycopg.connect(db.superuser_url, autocommit=True)
    try:
        su.execute(f'CREATE ROLE "{login}" LOGIN NOSUPERUSER NOBYPASSRLS')
        su.execute(
            "CREATE TABLE sat_items (tenant uuid NOT NULL, id integer NOT NULL, name varchar(64),"
            " value integer, PRIMARY KEY (tenant, id))"
        )
        su.execute(
            "INSERT INTO sat_items SELECT t, g, 'item ' || g, g "
            "FROM unnest(%s::uuid[]) t, generate_series(1, %s) g",
            (setup.tenants, setup.rows),
        )
        su.execute(
            "CREATE OR REPLACE FUNCTION sqlalchemy_tenants_get_tenant() RETURNS text LANGUAGE sql "
            "SECURITY INVOKER STABLE AS $$ SELECT replace(current_user, 'tenant_', '') $$"
        )
        su.execute("ALTER TABLE sat_items ENABLE ROW LEVEL SECURITY")
        su.execute(get_table_policy(table_name="sat_items", column_type=uuid.UUID))
        su.execute(f'GRANT USAGE ON SCHEMA public TO "{login}"')
        for role in roles:  # what PostgresManager.create_tenant does, as the superuser
            su.execute(f'CREATE ROLE "{role}"')
        su.execute(f'GRANT {quoted} TO "{login}"')
        su.execute(f"GRANT USAGE ON SCHEMA public TO {quoted}")
        su.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON sat_items TO {quoted}")
        su.execute("VACUUM ANALYZE sat_items")
        parts = urlsplit(db.runtime_url)
        url = db.runtime_url.replace(f"{parts.username}@", f"{login}@", 1)
        engine = create_engine(url, pool_size=8)
        manager = PostgresManager.from_engine(engine, schema_name="public")
        rows = setup.rows

        class SatItem(DeclarativeBase):
            pass

        class Item(SatItem):
            __tablename__ = "sat_items"
            tenant: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True)
            id: Mapped[int] = mapped_column(Integer, primary_key=True)
            name: Mapped[str] = mapped_column(String(64))
            value: Mapped[int] = mapped_column(Integer)

        def point(t: uuid.UUID, k: int) -> object:
            with manager.new_tenant_session(t) as s:
                s.scalars(select(Item).where(Item.id == _pick(k, rows))).one()
                s.commit()
            return None

        def scan(t: uuid.UUID, k: int) -> object:
            with manager.new_tenant_session(t) as s:
                assert len(s.scalars(select(Item)).all()) >= rows
                s.commit()
            return None

        def insert(t: uuid.UUID, k: int) -> object:
            with manager.new_tenant_session(t) as s:
                s.add(Item(tenant=t, id=next(_insert_ids), name="new", value=k))
                s.commit()
            return None

        try:
            yield {"point": point, "scan": scan, "insert": insert}
        finally:
            engine.dispose()
    finally:
        su.execute("DROP TABLE IF EXISTS sat_items")
        su.execute("DROP FUNCTION IF EXISTS sqlalchemy_tenants_get_tenant()")
        su.execute(f'REVOKE ALL ON SCHEMA public FROM {quoted}, "{login}"')
        su.execute(f'DROP ROLE IF EXISTS {quoted}, "{login}"')
        su.close()


# --------------------------------------------------------------------------- measuring


@dataclass
class Result:
    """Transactions per second of each variant, one value per round."""

    figure: str
    tps: dict[str, list[float]]

    def median(self, variant: str) -> float:
        return statistics.median(self.tps[variant])

    def ratio(self, a: str, b: str) -> float:
        return self.median(a) / self.median(b)

    def paired(self, a: str, b: str) -> float:
        """Median of the per-round ratios (each round's variants ran back to back)."""
        return statistics.median(x / y for x, y in zip(self.tps[a], self.tps[b], strict=True))


def _sequential(txn: Txn, tenants: list[uuid.UUID], n: int, start: int) -> float:
    t0 = time.perf_counter()
    for k in range(start, start + n):
        txn(tenants[k % len(tenants)], k)
    return n / (time.perf_counter() - t0)


def _threaded(txn: Txn, tenants: list[uuid.UUID], n: int, start: int, threads: int) -> float:
    per = n // threads
    errors: list[BaseException] = []
    gate = threading.Barrier(threads + 1)

    def work(i: int) -> None:
        gate.wait()
        try:
            for k in range(start + i * per, start + (i + 1) * per):
                txn(tenants[(k * 7) % len(tenants)], k)
        except BaseException as exc:  # reported below
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for th in pool:
        th.start()
    gate.wait()
    t0 = time.perf_counter()
    for th in pool:
        th.join()
    if errors:
        raise errors[0]
    return per * threads / (time.perf_counter() - t0)


def interleaved(
    figure: str, variants: Mapping[str, Callable[[int], float]], rounds: int, progress: bool
) -> Result:
    """Run each variant once per round, the starting variant rotating; TPS per round."""
    names = list(variants)
    tps: dict[str, list[float]] = {n: [] for n in names}
    for name in names:  # warm-up: connections, compiled caches, the role check
        variants[name](-1)
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            tps[name].append(variants[name](r))
        if progress:
            print(
                f"  {figure} round {r + 1}/{rounds}: " + ", ".join(f"{n} {tps[n][-1]:,.0f}" for n in names),
                file=sys.stderr,
            )
    return Result(figure, tps)


def fig_sync(setup: Setup, rounds: int, n: int, progress: bool) -> list[Result]:
    results: list[Result] = []
    with ExitStack() as stack:

        def engine() -> Engine:
            e = create_engine(setup.db.runtime_url, pool_size=8)
            stack.callback(e.dispose)
            return e

        variants: dict[str, dict[str, Txn]] = {
            "tenancy": tenancy_txns(TenantSessionFactory(engine(), binding_key=setup.key), setup.rows),
            "none": filtered_txns(engine(), PlainItem, setup.rows),
            "textbook": textbook_txns(engine(), setup.rows),
        }
        peer = stack.enter_context(sqlalchemy_tenants_peer(setup))
        if peer is not None:
            variants["sqlalchemy-tenants"] = peer
        tenants = setup.tenants
        for shape in ("point", "scan", "insert"):
            fns = {
                name: (lambda r, txn=txns[shape]: _sequential(txn, tenants, n if r >= 0 else 50, r * n))
                for name, txns in variants.items()
            }
            results.append(interleaved(shape, fns, rounds, progress))
        fns = {
            name: (lambda r, txn=txns["point"]: _threaded(txn, tenants, n if r >= 0 else 80, r * n, 8))
            for name, txns in variants.items()
        }
        results.append(interleaved("8 threads (point)", fns, rounds, progress))
    return results


def _async_url(url: str, driver: str) -> str:
    return url.replace("postgresql+psycopg://", f"postgresql+{driver}://", 1)


def async_drivers() -> list[str]:
    drivers = ["psycopg"]
    try:
        import asyncpg  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        pass
    else:
        drivers.append("asyncpg")
    return drivers


def fig_async(setup: Setup, rounds: int, n: int, progress: bool) -> list[Result]:
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    from tenancy import AsyncTenantSessionFactory

    rows, tenants = setup.rows, setup.tenants
    results: list[Result] = []

    async def main() -> None:
        engines = {
            d: [create_async_engine(_async_url(setup.db.runtime_url, d)) for _ in range(2)]
            for d in async_drivers()
        }
        try:
            for shape in ("point", "scan", "insert"):
                variants: dict[str, Callable[[uuid.UUID, int], Awaitable[object]]] = {}
                for driver, (te, pe) in engines.items():
                    factory = AsyncTenantSessionFactory(te, binding_key=setup.key)
                    variants[f"tenancy {driver}"] = _async_tenancy(factory, shape, rows)
                    variants[f"plain {driver}"] = _async_plain(AsyncSession, pe, shape, rows)
                names = list(variants)
                tps: dict[str, list[float]] = {v: [] for v in names}
                for name in names:
                    for k in range(50):
                        await variants[name](tenants[k % len(tenants)], k)
                for r in range(rounds):
                    order = names[r % len(names) :] + names[: r % len(names)]
                    for name in order:
                        t0 = time.perf_counter()
                        for k in range(r * n, r * n + n):
                            await variants[name](tenants[k % len(tenants)], k)
                        tps[name].append(n / (time.perf_counter() - t0))
                    if progress:
                        print(
                            f"  async {shape} round {r + 1}/{rounds}: "
                            + ", ".join(f"{v} {tps[v][-1]:,.0f}" for v in names),
                            file=sys.stderr,
                        )
                results.append(Result(f"async {shape}", tps))
        finally:
            for pair in engines.values():
                for e in pair:
                    await e.dispose()

    asyncio.run(main())
    return results


def _async_tenancy(factory: Any, shape: str, rows: int) -> Callable[[uuid.UUID, int], Awaitable[object]]:
    async def run(t: uuid.UUID, k: int) -> object:
        async with factory.for_instance(t) as s:
            if shape == "point":
                (await s.scalars(select(TItem).where(TItem.id == _pick(k, rows)))).one()
            elif shape == "scan":
                assert len((await s.scalars(select(TItem))).all()) >= rows
            else:
                s.add(TItem(id=next(_insert_ids), name="new", value=k))
            await s.commit()
        return None

    return run


def _async_plain(
    session_class: Any, engine: Any, shape: str, rows: int
) -> Callable[[uuid.UUID, int], Awaitable[object]]:
    m = PlainItem

    async def run(t: uuid.UUID, k: int) -> object:
        async with session_class(engine) as s:
            if shape == "point":
                (await s.scalars(select(m).where(m.instance_id == t, m.id == _pick(k, rows)))).one()
            elif shape == "scan":
                assert len((await s.scalars(select(m).where(m.instance_id == t))).all()) >= rows
            else:
                s.add(m(instance_id=t, id=next(_insert_ids), name="new", value=k))
            await s.commit()
        return None

    return run


def fig_trips(setup: Setup) -> dict[str, float]:
    """Round trips per point transaction, counted on the wire, per driver."""
    parts = urlsplit(setup.db.runtime_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5432
    found: dict[str, float] = {}
    tenants, rows, n = setup.tenants, setup.rows, 40
    with RoundTripProxy(host, port) as proxy:
        url = setup.db.runtime_url.replace(f"{host}:{port}", f"127.0.0.1:{proxy.port}", 1)
        for variant in ("tenancy", "none", "textbook"):
            engine = create_engine(url)
            try:
                if variant == "tenancy":
                    txns = tenancy_txns(TenantSessionFactory(engine, binding_key=setup.key), rows)
                elif variant == "none":
                    txns = filtered_txns(engine, PlainItem, rows)
                else:
                    txns = textbook_txns(engine, rows)
                txn = txns["point"]
                for k in range(10):
                    txn(tenants[k], k)
                proxy.reset()
                for k in range(n):
                    txn(tenants[k], k)
                found[f"{variant} psycopg"] = proxy.round_trips / n
            finally:
                engine.dispose()

        from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

        from tenancy import AsyncTenantSessionFactory

        async def count(driver: str) -> None:
            for variant in ("tenancy", "plain"):
                engine = create_async_engine(_async_url(url, driver))
                try:
                    if variant == "tenancy":
                        run = _async_tenancy(
                            AsyncTenantSessionFactory(engine, binding_key=setup.key), "point", rows
                        )
                    else:
                        run = _async_plain(AsyncSession, engine, "point", rows)
                    for k in range(10):
                        await run(tenants[k], k)
                    proxy.reset()
                    for k in range(n):
                        await run(tenants[k], k)
                    found[f"{variant} async {driver}"] = proxy.round_trips / n
                finally:
                    await engine.dispose()

        for driver in async_drivers():
            asyncio.run(count(driver))
    return found


# --------------------------------------------------------------------------- report


def report(
    results: list[Result], trips: dict[str, float], meta: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    lines = [
        f"Whole transactions, {meta['rounds']} rounds x {meta['txns']:,} (median TPS per variant;"
        f" ratio = median A / median B, paired = median of per-round ratios)",
        "",
    ]
    out: dict[str, Any] = {"machine": meta, "figures": {}, "round_trips": trips}
    for res in results:
        names = list(res.tps)
        lines.append(f"## {res.figure}")
        lines.append("| variant | median TPS | min | max |")
        lines.append("|---|---|---|---|")
        for name in names:
            low, high = min(res.tps[name]), max(res.tps[name])
            lines.append(f"| {name} | {res.median(name):,.0f} | {low:,.0f} | {high:,.0f} |")
        pairs: list[tuple[str, str]] = []
        if "tenancy" in names:
            pairs = [("tenancy", other) for other in names if other != "tenancy"]
        else:
            pairs = [(a, a.replace("tenancy", "plain")) for a in names if a.startswith("tenancy")]
        for a, b in pairs:
            lines.append(f"| **{a} / {b}** | {res.ratio(a, b):.2f} (paired {res.paired(a, b):.2f}) | | |")
        lines.append("")
        out["figures"][res.figure] = {
            "tps": res.tps,
            "ratios": {
                f"{a} / {b}": {"median": res.ratio(a, b), "paired": res.paired(a, b)} for a, b in pairs
            },
        }
    if trips:
        lines.append("## round trips per point transaction (counted on the wire)")
        lines += [f"- {k}: {v:.2f}" for k, v in trips.items()]
    return "\n".join(lines), out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--txns", type=int, default=2000, help="transactions per variant per round")
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=100, help="rows per tenant")
    parser.add_argument("--quick", action="store_true", help="3 rounds x 300 transactions")
    parser.add_argument("--only", default=",".join(FIGURES))
    parser.add_argument("--json", dest="json_path")
    parser.add_argument("--pg-url", dest="pg_url")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.txns = 3, 300
    only = [f.strip() for f in args.only.split(",") if f.strip()]
    unknown = set(only) - set(FIGURES)
    if unknown:
        parser.error(f"unknown figure(s): {', '.join(sorted(unknown))}")
    meta = {
        **machine(),
        "rounds": args.rounds,
        "txns": args.txns,
        "tenants": args.tenants,
        "rows_per_tenant": args.rows,
        "loadavg": os.getloadavg(),
        "drivers": async_drivers(),
    }
    results: list[Result] = []
    trips: dict[str, float] = {}
    with fresh_database("tenancy_txnbench", server=args.pg_url) as db:
        setup = load(db, args.tenants, args.rows)
        if "sync" in only:
            results += fig_sync(setup, args.rounds, args.txns, args.progress)
        if "async" in only:
            results += fig_async(setup, args.rounds, args.txns, args.progress)
        if "trips" in only:
            trips = fig_trips(setup)
    meta["loadavg_after"] = os.getloadavg()
    table, data = report(results, trips, meta)
    print(f"{meta['date']} · {meta['platform']} · {meta['cpus']} CPUs · load {meta['loadavg']}")
    print(table)
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
