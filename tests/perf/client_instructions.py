"""What a tenant transaction costs the client, in instructions (callgrind): the Python side of
whole ORM transactions, deterministic where timings on a shared machine are not.

Run from the repository root (needs ``valgrind`` and a PostgreSQL, as the test suite finds one)::

    .venv/bin/python -m tests.perf.client_instructions                  # 300 transactions
    .venv/bin/python -m tests.perf.client_instructions --txns 1000 --json client.json

For each variant the benchmark runs this module twice under ``valgrind --tool=callgrind`` (with a
fixed ``PYTHONHASHSEED``): once with W warm-up transactions (150, past every tenant once) and
once with W + N. The difference
over N is the Python process's instructions per transaction, with interpreter start, imports and
warm-up cancelled out. The server is not counted (see :mod:`tests.perf.server_instructions`).

Variants, whole ORM point transactions on the tables of :mod:`tests.perf.bench_tenant_txn`
(100 tenants x 100 rows, a different tenant every transaction): ``none`` (a plain ``Session``
naming ``instance_id``, no RLS), ``textbook`` (the same plus a ``set_config`` statement in
``after_begin``, under a policy trusting it) and ``tenancy`` (a ``TenantSessionFactory`` session).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from sqlalchemy import create_engine

from tenancy import TenantSessionFactory
from tenancy.postgres.binding import parse_binding_key
from tenancy.testing.postgres import fresh_database
from tests.perf import callgrind
from tests.perf.bench_tenant_txn import PlainItem, Txn, filtered_txns, load, tenancy_txns, textbook_txns
from tests.perf.harness import machine

VARIANTS = ("none", "textbook", "tenancy")
TENANTS = 100
ROWS = 100


def _inner(variant: str, count: int, runtime_url: str, key: str, tenants: list[str]) -> None:
    """Run *count* transactions of *variant* (inside callgrind)."""
    engine = create_engine(runtime_url, pool_size=1, max_overflow=0)
    txns: dict[str, Txn]
    if variant == "tenancy":
        factory = TenantSessionFactory(engine, binding_key=parse_binding_key(key))
        txns = tenancy_txns(factory, ROWS)
    elif variant == "textbook":
        txns = textbook_txns(engine, ROWS)
    else:
        txns = filtered_txns(engine, PlainItem, ROWS)
    point = txns["point"]
    ids = [uuid.UUID(t) for t in tenants]
    for k in range(count):
        point(ids[(k * 7919) % len(ids)], k)
    engine.dispose()


def main(argv: list[str] | None = None) -> int:
    # Warm-up past every tenant once: the seal cache, SQLAlchemy's statement caches, psycopg's
    # prepared statements are then in their steady state.
    parser = callgrind.arguments(__doc__, warmup=150)
    parser.add_argument("--inner", nargs=3, metavar=("VARIANT", "COUNT", "SPEC"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inner:
        variant, count, spec = args.inner
        with open(spec, encoding="utf-8") as f:
            setup = json.load(f)
        _inner(variant, int(count), setup["runtime_url"], setup["key"], setup["tenants"])
        return 0
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    meta = {
        **machine(),
        "txns": args.txns,
        "warmup": args.warmup,
        "tenants": TENANTS,
        "rows_per_tenant": ROWS,
    }
    figures: dict[str, float] = {}
    work = Path(tempfile.mkdtemp(prefix="tenancy-client-callgrind-"))
    try:
        with fresh_database("tenancy_clientbench") as db:
            setup = load(db, TENANTS, ROWS)
            spec = work / "setup.json"
            spec.write_text(
                json.dumps(
                    {
                        "runtime_url": db.runtime_url,
                        # A throwaway database's key, handed to the child in a private temp file.
                        "key": setup.key.as_text(),
                        "tenants": [str(t) for t in setup.tenants],
                    }
                )
            )
            env = {**os.environ, "PYTHONHASHSEED": "0"}
            for variant in VARIANTS:
                counts = []
                for n in (args.warmup, args.warmup + args.txns):
                    out = work / f"{variant}.{n}.out"
                    subprocess.run(
                        [
                            "valgrind",
                            "--tool=callgrind",
                            f"--callgrind-out-file={out}",
                            "--dump-instr=no",
                            sys.executable,
                            "-m",
                            "tests.perf.client_instructions",
                            "--inner",
                            variant,
                            str(n),
                            str(spec),
                        ],
                        check=True,
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                    counts.append(callgrind.total(out))
                figures[variant] = (counts[1] - counts[0]) / args.txns
                print(f"  {variant}: {figures[variant] / 1000:.1f}k", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    headline = f"{meta['date']} · {meta['platform']} · Python {sys.version.split()[0]} under callgrind"
    callgrind.report(figures, "client instructions per ORM point transaction", headline, meta, args.json_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
