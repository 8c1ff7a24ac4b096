"""What a tenant transaction costs the server, in instructions (callgrind): deterministic where
timings on a shared machine are not.

Run from the repository root (needs ``valgrind`` and PostgreSQL server binaries; as root, the
server runs as the ``postgres`` OS user)::

    .venv/bin/python -m tests.perf.server_instructions                  # 300 transactions
    .venv/bin/python -m tests.perf.server_instructions --txns 1000 --json server.json

A throwaway PostgreSQL runs under ``valgrind --tool=callgrind``; every backend writes its own
instruction count when it exits. Each variant opens a connection, runs W warm-up transactions and
closes it, then opens another and runs W + N: the difference over N is the backend's instructions
per transaction, with connection start and warm-up cancelled out. The same run of the same
binaries gives the same figures to a fraction of a percent, however loaded the machine is.

Every transaction is a point lookup for a different tenant (the benchmark's tables from
:mod:`tests.perf.bench_tenant_txn`, 100 tenants x 100 rows), sent with raw psycopg exactly as each
approach sends it:

- ``none``      ``BEGIN``; the lookup naming ``instance_id``, on the table without RLS; ``COMMIT``.
- ``setting``   ``BEGIN`` and a ``set_config`` in one pipeline; the lookup under a policy that
                trusts the setting (the textbook recipe, without its extra round trip).
- ``reset``     the same after tenancy's session reset (binding.RESET_SQL, its own transaction).
- ``binding``   the reset and tenancy's binding statement with its session check
                (binding.BIND_SQL); the setting-only policy.
- ``tenancy``   all of tenancy's fast path: the same under the sealed policy.
- ``pooled``    the same with the backend named by pid and start time, as behind PgBouncer.
- ``new backend`` the same with no backend named: the first transaction on every backend.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import generators, pq, waiting

from tenancy.postgres.binding import BIND_SQL, RESET_SQL, seal, session_state
from tenancy.testing.postgres import fresh_database
from tests.citus.cluster import _free_port, _pg_bindir
from tests.perf import callgrind
from tests.perf.bench_tenant_txn import libpq, load
from tests.perf.harness import machine

_RESET = [b"BEGIN", *(s.encode("ascii") for s in RESET_SQL), b"COMMIT"]
_BIND = BIND_SQL.encode("ascii")
_SET = b"SELECT pg_catalog.set_config('tenancy.instance_id', $1, true)"
_UNSEALED = (
    "CREATE POLICY setting_only ON txn_items_unsealed USING "
    "(instance_id = NULLIF(current_setting('tenancy.instance_id', true), '')::uuid)"
)
# One transaction: (connection, k) -> None, for the k-th tenant.
Txn = Callable[[psycopg.Connection[Any], int], None]


def _pipeline(
    conn: psycopg.Connection[Any], statements: list[tuple[bytes, list[bytes | None] | None]]
) -> list[Any]:
    def gen() -> Any:
        pgconn = conn.pgconn
        pgconn.enter_pipeline_mode()
        for sql, params in statements:
            pgconn.send_query_params(sql, params)
        pgconn.pipeline_sync()
        yield from generators.send(pgconn)
        results: list[Any] = []
        for _ in range(len(statements) + 1):
            results += yield from generators.fetch_many(pgconn)
        pgconn.exit_pipeline_mode()
        return results

    results: list[Any] = waiting.wait(gen(), conn.pgconn.socket)
    for result in results:
        if result.status == pq.ExecStatus.FATAL_ERROR:
            raise RuntimeError(result.error_message.decode("utf-8", "replace"))
    return results


@contextmanager
def callgrind_server() -> Iterator[tuple[str, Path]]:
    """A throwaway PostgreSQL under callgrind: (superuser URL, directory of the count files)."""
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    bindir = _pg_bindir()
    if bindir is None:
        sys.exit("no PostgreSQL server binaries (initdb, postgres) found")
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    work = Path(tempfile.mkdtemp(prefix="tenancy-callgrind-"))
    if prefix:
        shutil.chown(work, "postgres")
    port = _free_port()
    subprocess.run(
        [*prefix, str(bindir / "initdb"), "-D", str(work / "data"), "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
    )
    server = subprocess.Popen(
        [
            *prefix,
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={work}/cg.%p",
            "--dump-instr=no",
            str(bindir / "postgres"),
            "-D",
            str(work / "data"),
            "-p",
            str(port),
            "-k",
            str(work),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "autovacuum=off",
            "-c",
            "fsync=off",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    try:
        for _ in range(240):
            try:
                psycopg.connect(url, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                time.sleep(0.5)
        else:
            sys.exit("PostgreSQL under valgrind did not start in 2 minutes")
        yield url, work
    finally:
        stop = [str(bindir / "pg_ctl"), "-D", str(work / "data"), "-m", "fast", "-t", "120", "stop"]
        subprocess.run([*prefix, *stop], check=False, capture_output=True)
        try:
            server.wait(timeout=120)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(work, ignore_errors=True)


def _count(work: Path, pid: int) -> int:
    path = work / f"cg.{pid}"
    for _ in range(600):  # written when the backend exits
        if path.exists():
            return callgrind.total(path)
        time.sleep(0.1)
    raise RuntimeError(f"no callgrind count for backend {pid}")


def variants(setup: Any) -> dict[str, Txn]:
    """Variant name -> one transaction (on a connection, for the k-th tenant)."""
    seals = {t: seal(setup.key, t).encode("ascii") for t in setup.tenants}
    backends: dict[int, bytes | None] = {}

    def lookup(conn: psycopg.Connection[Any], table: str, tenant: Any, k: int) -> None:
        row = conn.execute(
            f"SELECT id, name, value FROM {table} WHERE instance_id = %s AND id = %s",
            (tenant, k % setup.rows + 1),
        ).fetchone()
        assert row is not None, "the lookup found nothing: the binding did not hold"
        conn.commit()

    def plain(table: str) -> Txn:
        def txn(conn: psycopg.Connection[Any], k: int) -> None:
            lookup(conn, table, setup.tenants[k % len(setup.tenants)], k)

        return txn

    def setting(table: str, reset: bool) -> Txn:
        def txn(conn: psycopg.Connection[Any], k: int) -> None:
            tenant = setup.tenants[k % len(setup.tenants)]
            before = [(s, None) for s in _RESET] if reset else []
            _pipeline(conn, [*before, (b"BEGIN", None), (_SET, [str(tenant).encode("ascii")])])
            lookup(conn, table, tenant, k)

        return txn

    def tenancy(table: str, naming: str) -> Txn:
        # naming: "direct" (what tenancy keeps on its own connection), "exact" (pid and start
        # time, as behind PgBouncer) or "new" (nothing: every transaction checks role settings).
        def txn(conn: psycopg.Connection[Any], k: int) -> None:
            tenant = setup.tenants[k % len(setup.tenants)]
            backend = None if naming == "new" else backends.get(id(conn))
            params = [str(tenant).encode("ascii"), seals[tenant], backend]
            results = _pipeline(conn, [*((s, None) for s in _RESET), (b"BEGIN", None), (_BIND, params)])
            answer = results[-2].get_value(0, results[-2].nfields - 1)
            state = session_state(answer, conn.pgconn.backend_pid)
            assert not state.tainted and state.planted is None, "the session check refused"
            kept = state.backend if naming == "direct" else answer.decode("ascii")
            backends[id(conn)] = None if kept is None else kept.encode("ascii")
            lookup(conn, table, tenant, k)

        return txn

    return {
        "none": plain("txn_items_plain"),
        "setting": setting("txn_items_unsealed", reset=False),
        "reset": setting("txn_items_unsealed", reset=True),
        "binding": tenancy("txn_items_unsealed", "direct"),
        "tenancy": tenancy("txn_items", "direct"),
        "pooled": tenancy("txn_items", "exact"),
        "new backend": tenancy("txn_items", "new"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = callgrind.arguments(__doc__, warmup=30)
    args = parser.parse_args(argv)
    meta = {**machine(), "txns": args.txns, "warmup": args.warmup, "tenants": 100, "rows_per_tenant": 100}
    figures: dict[str, float] = {}
    with callgrind_server() as (server, work), fresh_database("tenancy_cgbench", server=server) as db:
        setup = load(db, 100, 100)
        with psycopg.connect(libpq(db.admin_url), autocommit=True) as conn:
            conn.execute("CREATE TABLE txn_items_unsealed (LIKE txn_items_plain INCLUDING ALL)")
            conn.execute("INSERT INTO txn_items_unsealed SELECT * FROM txn_items_plain")
            conn.execute("ALTER TABLE txn_items_unsealed ENABLE ROW LEVEL SECURITY")
            conn.execute("ALTER TABLE txn_items_unsealed FORCE ROW LEVEL SECURITY")
            conn.execute(_UNSEALED)
            conn.execute(f'GRANT SELECT ON txn_items_unsealed TO "{db.runtime}"')
            conn.execute("VACUUM ANALYZE txn_items_unsealed")
            meta["server_version"] = conn.info.server_version
        for name, txn in variants(setup).items():
            counts = []
            for n in (args.warmup, args.warmup + args.txns):
                with psycopg.connect(libpq(db.runtime_url)) as conn:
                    pid = conn.info.backend_pid
                    for k in range(n):
                        txn(conn, k * 7919)
                counts.append(_count(work, pid))
            figures[name] = (counts[1] - counts[0]) / args.txns
            print(f"  {name}: {figures[name] / 1000:.1f}k", file=sys.stderr, flush=True)
    headline = f"{meta['date']} · {meta['platform']} · PostgreSQL {meta['server_version']} under callgrind"
    callgrind.report(figures, "server instructions per transaction", headline, meta, args.json_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
