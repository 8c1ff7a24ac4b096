"""Peak memory and throughput of ``tenancy sync`` for 1,000 vs 10,000 tenants.

Run from the repository root (not part of the test suite; nothing here is timed against a
threshold)::

    .venv/bin/python -m tests.perf.bench_sync                      # 1000 and 10000 tenants
    .venv/bin/python -m tests.perf.bench_sync --sizes 1000,10000,30000 --latency 0.02 --json out.json
    .venv/bin/python -m tests.perf.bench_sync --removed-share 0.5   # half removed: claims skip them

For each size: a fresh PostgreSQL database (found or started like the test suite does), a
``tenancy emulator`` *process* with that many sites (so the emulator's own memory is not
measured), the tenants registered, then one ``tenancy sync`` process whose peak RSS is read
from ``os.wait4`` (``ru_maxrss``). Memory flat in the number of tenants means the two peaks
are about equal; throughput is tenants per second at the given latency and concurrency.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import create_engine, insert

from tenancy.tenants.model import Tenant
from tenancy.testing.postgres import fresh_database
from tests.conftest import migrate
from tests.perf.emulator_process import EmulatorProcess

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    """One measured size."""

    tenants: int
    removed_share: float
    concurrency: int
    latency_s: float
    seconds: float
    tenants_per_s: float
    peak_rss_mib: float
    synced: int
    failed: int


def _rows(ids: list[str], removed_share: float, now: dt.datetime) -> list[dict[str, object]]:
    """Tenant rows: never synced, or (with ``removed_share``) all synced two days ago and
    that share of them removed, waiting for their recheck (they must cost the claims nothing)."""
    if removed_share <= 0:
        return [
            {"instance_id": uuid.UUID(i), "first_seen_at": now, "last_synced_at": None, "status": "active",
             "next_attempt_at": None}
            for i in ids
        ]  # fmt: skip
    cut = int(len(ids) * removed_share)
    old = now - dt.timedelta(days=2)
    return [
        {"instance_id": uuid.UUID(i), "first_seen_at": old, "last_synced_at": old,
         "status": "removed" if n < cut else "active",
         "next_attempt_at": now + dt.timedelta(days=5) if n < cut else None}
        for n, i in enumerate(ids)
    ]  # fmt: skip


def measure(
    size: int, *, concurrency: int, latency: float, removed_share: float = 0.0, processes: int = 1
) -> Result:
    """Sync ``size`` emulated tenants in a fresh database; the sync process's peak RSS."""
    emulator = EmulatorProcess(sites=size, latency=latency)
    wix_env = emulator.env
    try:
        ids = emulator.instance_ids
        with fresh_database(prefix="tenancy_bench") as db:
            engine = create_engine(db.admin_url)
            migrate(engine)
            now = dt.datetime.now(dt.UTC)
            with engine.begin() as conn:
                rows = _rows(ids, removed_share, now)
                for start in range(0, len(rows), 1000):
                    conn.execute(insert(Tenant), rows[start : start + 1000])
            engine.dispose()
            env = {
                **os.environ,
                **wix_env,
                "TENANCY_ADMIN_DATABASE_URL": db.admin_url,
                "PYTHONPATH": str(ROOT),
            }
            cmd = [sys.executable, "-m", "tenancy", "sync", "--json", "--concurrency", str(concurrency)]
            cmd += ["--rate", "1000000", "--processes", str(processes)]
            started = time.perf_counter()
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            assert proc.stdout is not None
            out = proc.stdout.read()
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            seconds = time.perf_counter() - started
            report = json.loads(out)
    finally:
        emulator.stop()
    return Result(
        tenants=size,
        removed_share=removed_share,
        concurrency=concurrency,
        latency_s=latency,
        seconds=round(seconds, 2),
        tenants_per_s=round(report["synced"] / seconds, 1),
        peak_rss_mib=round(usage.ru_maxrss / 1024, 1),  # Linux: KiB
        synced=report["synced"],
        failed=report["failed"],
    )


def main(argv: list[str] | None = None) -> int:
    """Measure every size, print a table and the JSON."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated tenant counts")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--processes", type=int, default=1, help="tenancy sync --processes")
    parser.add_argument("--latency", type=float, default=0.0, help="emulator seconds per answer")
    parser.add_argument(
        "--removed-share",
        type=float,
        default=0.0,
        help="tenants synced 2 days ago, this share of them removed (default: all never synced)",
    )
    parser.add_argument("--json", dest="json_path", help="also write the results to this file")
    args = parser.parse_args(argv)
    results = [
        measure(
            int(size),
            concurrency=args.concurrency,
            latency=args.latency,
            removed_share=args.removed_share,
            processes=args.processes,
        )
        for size in args.sizes.split(",")
    ]
    print(
        f"{'tenants':>8} {'removed':>8} {'conc':>5} {'latency':>8} {'seconds':>8} {'synced':>7} "
        f"{'synced/s':>9} {'peak RSS MiB':>13}"
    )
    for r in results:
        print(
            f"{r.tenants:>8} {r.removed_share:>8.2f} {r.concurrency:>5} {r.latency_s:>8.3f} "
            f"{r.seconds:>8.2f} {r.synced:>7} {r.tenants_per_s:>9.1f} {r.peak_rss_mib:>13.1f}"
        )
    data = json.dumps([asdict(r) for r in results], indent=2)
    print(data)
    if args.json_path:
        Path(args.json_path).write_text(data + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
