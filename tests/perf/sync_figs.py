"""Figures 5 and 6: ``tenancy.sync`` throughput against a bare ``requests`` loop, and its memory.

Figure 5 runs against the bundled emulator in a process of its own (as Wix is not in the
client's process: its HTTP handling would otherwise compete for the GIL of the process
measured), figure 6 against one in this process; each with a fresh PostgreSQL database per
data set, whose ``tenants`` rows are registered by SQL before anything is timed. Figure 6
runs each sync in a child process (``python -m tests.perf.sync_figs child ...``) that
reports its own peak RSS (``VmHWM``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Protocol

import psycopg
import requests
from requests.adapters import HTTPAdapter
from sqlalchemy import Engine, create_engine

from tenancy.emulator import Emulator
from tenancy.tenant_sync.job import SyncOptions, sync
from tenancy.testing.postgres import Database, fresh_database
from tenancy.wix.client import WixClient
from tests.perf.emulator_process import EmulatorProcess
from tests.perf.harness import Row

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _migrate(db: Database) -> None:
    from tests.conftest import migrate

    engine = create_engine(db.admin_url)
    try:
        migrate(engine, runtime_role=db.runtime)
    finally:
        engine.dispose()


@contextmanager
def tenants_db(instance_ids: list[str]) -> Iterator[Database]:
    """A migrated database whose ``tenants`` table holds *instance_ids* (active, never synced)."""
    with fresh_database("tenancy_bench_sync") as db:
        _migrate(db)
        with psycopg.connect(
            db.admin_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
        ) as c:
            c.execute(
                "INSERT INTO tenants (instance_id, status, first_seen_at, consecutive_failures) "
                "SELECT i, 'active', now(), 0 FROM unnest(%s::uuid[]) i",
                ([uuid.UUID(i) for i in instance_ids],),
            )
            c.execute("VACUUM ANALYZE tenants")
        yield db


def sync_engine(url: str, concurrency: int) -> Engine:
    """The admin engine as ``tenancy sync`` builds it."""
    return create_engine(url, pool_size=concurrency + 1, max_overflow=2)


class Wix(Protocol):
    """What the figures need of an emulator, in this process or its own."""

    base_url: str
    app_id: str
    app_secret: str

    @property
    def instance_ids(self) -> list[str]: ...

    @property
    def counts(self) -> dict[str, int]: ...

    def reset_counts(self) -> None: ...


def run_sync(engine: Engine, emu: Wix, concurrency: int, expected: int, processes: int = 1) -> float:
    """One ``sync(mode="all")`` with a fresh client (no cached app tokens); seconds."""
    client = WixClient(emu.app_id, emu.app_secret, base_url=emu.base_url, pool_size=max(4, concurrency))
    t0 = time.perf_counter()
    report = sync(engine, client, SyncOptions(mode="all", concurrency=concurrency, processes=processes))
    took = time.perf_counter() - t0
    if report.synced != expected or report.failed:
        raise RuntimeError(f"sync synced {report.synced}/{expected}, failed {report.failed}")
    return took


def run_bare(emu: Wix, instance_ids: list[str], concurrency: int) -> float:
    """The same HTTP calls with nothing else: a token and Get App Instance per tenant; seconds."""
    http = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(4, concurrency))
    http.mount("http://", adapter)
    base = emu.base_url

    def one(iid: str) -> None:
        reply = http.post(
            f"{base}/oauth2/token",
            json={
                "grant_type": "client_credentials",
                "client_id": emu.app_id,
                "client_secret": emu.app_secret,
                "instance_id": iid,
            },
            timeout=10,
        )
        reply.raise_for_status()
        token = reply.json()["access_token"]
        reply = http.get(f"{base}/apps/v1/instance", headers={"Authorization": token}, timeout=10)
        reply.raise_for_status()
        reply.json()

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, instance_ids))
    took = time.perf_counter() - t0
    http.close()
    return took


def _calls(emu: Wix) -> int:
    counts = emu.counts
    return counts.get("access_token", 0) + counts.get("get_app_instance", 0)


def fig_sync_throughput(*, quick: bool, reps: int) -> list[Row]:
    """Figure 5: tenants per second of sync vs a bare requests loop, same calls, same emulator."""
    n_big = 300 if quick else 1_000
    n_small = 40 if quick else 100  # one worker at 50 ms: 1,000 tenants would take 100 s a run
    latency = 0.05
    runs = [(1, 1), (8, 1), (8, 2), (32, 1), (32, 2)]  # (workers, processes)
    with EmulatorProcess(sites=n_big, seed=5, latency=latency) as emu:
        return [
            sync_vs_bare(
                emu,
                n_small if concurrency == 1 else n_big,
                concurrency,
                reps=reps,
                latency=latency,
                processes=processes,
            )
            for concurrency, processes in runs
        ]


def _cpu() -> float:
    """CPU seconds of this process and its waited-for children (the sync's worker processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def sync_vs_bare(
    emu: Wix,
    n: int,
    concurrency: int,
    *,
    reps: int,
    latency: float,
    figure: str = "5",
    processes: int = 1,
) -> Row:
    """One row of figure 5: the first *n* of *emu*'s tenants (*latency* s per answer), sync
    (its *concurrency* workers in *processes* processes) and the bare loop (threads in one
    process) interleaved."""
    subset = emu.instance_ids[:n]
    sa: list[float] = []
    sb: list[float] = []
    calls_a: list[int] = []
    calls_b: list[int] = []
    cpu_a: list[float] = []
    cpu_b: list[float] = []
    with tenants_db(subset) as db:
        engine = sync_engine(db.admin_url, concurrency)
        try:
            for i in range(reps):
                for variant in ("sync", "bare") if i % 2 == 0 else ("bare", "sync"):
                    emu.reset_counts()
                    cpu = _cpu()  # the client's processes only (the emulator has its own)
                    if variant == "sync":
                        sa.append(run_sync(engine, emu, concurrency, n, processes) / n)
                        cpu_a.append((_cpu() - cpu) / n)
                        calls_a.append(_calls(emu))
                    else:
                        sb.append(run_bare(emu, subset, concurrency) / n)
                        cpu_b.append((_cpu() - cpu) / n)
                        calls_b.append(_calls(emu))
        finally:
            engine.dispose()
    return Row(
        figure=figure,
        name=f"sync {n:,} tenants, C={concurrency}, {processes} process{'es' if processes > 1 else ''}, "
        f"{latency * 1000:.0f} ms latency",
        a_label="tenancy.sync",
        b_label="bare requests loop",
        unit="ms/tenant",
        a_min=min(sa) * 1e3,
        a_med=statistics.median(sa) * 1e3,
        b_min=min(sb) * 1e3,
        b_med=statistics.median(sb) * 1e3,
        target=1 / 0.9 if concurrency > 1 else None,
        note=(
            f"{1 / statistics.median(sa):.0f} vs {1 / statistics.median(sb):.0f} tenants/s; "
            f"HTTP calls {calls_a[0]:,} vs {calls_b[0]:,}; "
            f"CPU {statistics.median(cpu_a) * 1e3:.1f} vs {statistics.median(cpu_b) * 1e3:.1f} "
            "ms/tenant; throughput >= 0.9x is time <= 1.11x"
        ),
        extra={
            "tenants_per_s_sync": [1 / x for x in sa],
            "tenants_per_s_bare": [1 / x for x in sb],
            "calls_sync": calls_a,
            "calls_bare": calls_b,
            "cpu_ms_per_tenant_sync": [x * 1e3 for x in cpu_a],
            "cpu_ms_per_tenant_bare": [x * 1e3 for x in cpu_b],
        },
    )


def fig_sync_memory(*, quick: bool, concurrency: int = 8) -> list[Row]:
    """Figure 6: peak RSS of a sync child process, 1,000 vs 10,000 vs 100,000 tenants."""
    sizes = (1_000, 5_000, 20_000) if quick else (1_000, 10_000, 100_000)
    peaks: dict[int, tuple[int, float]] = {}
    with Emulator(sites=max(sizes), seed=6) as emu:
        ids = emu.instance_ids
        for size in sizes:
            with tenants_db(ids[:size]) as db:
                cmd = [
                    sys.executable,
                    "-m",
                    "tests.perf.sync_figs",
                    "child",
                    "--url",
                    db.admin_url,
                    "--base-url",
                    emu.base_url,
                    "--app-id",
                    emu.app_id,
                    "--concurrency",
                    str(concurrency),
                    "--expected",
                    str(size),
                ]
                env = {**os.environ, "TENANCY_BENCH_APP_SECRET": emu.app_secret}
                print(f"  sync of {size:,} tenants in a child process...", file=sys.stderr, flush=True)
                out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT, env=env)
                result = json.loads(out.stdout.strip().splitlines()[-1])
                peaks[size] = (result["maxrss_kb"], result["seconds"])
    base_kb, base_s = peaks[sizes[0]]
    rows = []
    for size in sizes[1:]:
        kb, seconds = peaks[size]
        rows.append(
            Row(
                figure="6",
                name=f"sync peak RSS, C={concurrency}, 0 ms latency",
                a_label=f"{size:,} tenants",
                b_label=f"{sizes[0]:,} tenants",
                unit="MiB",
                a_min=kb / 1024,
                a_med=kb / 1024,
                b_min=base_kb / 1024,
                b_med=base_kb / 1024,
                target=1.2,
                note=f"one child process each; {size / seconds:.0f} vs {sizes[0] / base_s:.0f} tenants/s",
            )
        )
    return rows


def peak_rss_kb() -> int:
    """This process's peak resident set in KiB: ``VmHWM``, which starts afresh at exec.

    Not ``getrusage``: on Linux ``ru_maxrss`` (``RUSAGE_SELF`` and ``RUSAGE_CHILDREN``
    alike) survives ``execve``, so a child forked from a large parent (here one holding an
    emulator of 100,000 sites) reports at least the parent's size at the fork.
    """
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # not Linux: best effort


def _child(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--base-url", required=True)
    p.add_argument("--app-id", required=True)
    p.add_argument("--concurrency", type=int, required=True)
    p.add_argument("--expected", type=int, required=True)
    args = p.parse_args(argv)
    engine = sync_engine(args.url, args.concurrency)
    client = WixClient(
        args.app_id,
        os.environ["TENANCY_BENCH_APP_SECRET"],
        base_url=args.base_url,
        pool_size=max(4, args.concurrency),
    )
    t0 = time.perf_counter()
    report = sync(
        engine, client, SyncOptions(mode="all", concurrency=args.concurrency, since=dt.datetime.now(dt.UTC))
    )
    seconds = time.perf_counter() - t0
    engine.dispose()
    if report.synced != args.expected or report.failed:
        print(f"synced {report.synced}/{args.expected}, failed {report.failed}", file=sys.stderr)
        return 1
    print(json.dumps({"maxrss_kb": peak_rss_kb(), "seconds": seconds, "threads": threading.active_count()}))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        raise SystemExit(_child(sys.argv[2:]))
    raise SystemExit("usage: python -m tests.perf.sync_figs child ...  (run figures via tests.perf.bench)")
