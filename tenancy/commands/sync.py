"""``tenancy sync``: refresh the tenants table from Wix, once or ``--every DURATION``.

Exit codes: 0 every claimed tenant synced (or marked removed), 1 some tenants failed
(listed in the summary and on their rows, with Wix's request id; a 401/403/404 for one
instance included) or Wix was down and the run stopped early, 2 configuration or usage
error (including the token endpoint refusing the app's credentials), 130 interrupted by
SIGINT/SIGTERM during a run (the tenants in flight were finished and the summary printed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from sqlalchemy import Engine

from tenancy.commands.copy_origin import add_skip_option
from tenancy.commands.database import database_errors, make_engine, require_rls_bypass
from tenancy.errors import ConfigurationError, InvalidInstanceId, LifecycleError, WixAuthError
from tenancy.instance_ids import parse_instance_id
from tenancy.lifecycle.duplicate import copy_pending
from tenancy.settings import Settings
from tenancy.tenant_sync.job import (
    DEFAULT_OUTAGE_AFTER,
    DEFAULT_RECHECK_REMOVED_AFTER,
    Backoff,
    SyncOptions,
    SyncReport,
    sync,
)
from tenancy.tenant_sync.metrics import require_prometheus_client, write_metrics
from tenancy.tenant_sync.ratelimit import KeyedRateLimiter, TokenBucket
from tenancy.wix.client import WixClient

NAME = "sync"
HELP = (
    "refresh the tenants table from Wix's Get App Instance: tenants that are due, --all, "
    "or --instance ID...; several processes may run at once"
)
EPILOG = """\
environment:
  TENANCY_ADMIN_DATABASE_URL  the owner role's URL (BYPASSRLS; default: DATABASE_URL, which
                              only works on SQLite: row-level security hides tenants from the
                              runtime role)
  DATABASE_URL                fallback for the above (no default: unset, sync exits 2)
  WIX_APP_ID, WIX_APP_SECRET  the app's credentials (required)
  WIX_API_BASE_URL            Wix's API (default: https://www.wixapis.com; or `tenancy emulator`)

exit codes:
  0    every claimed tenant synced (or marked removed), duplicated sites copied
  1    some tenants failed (listed in the summary and on their rows), a copy of a duplicated
       site failed, or Wix was down and
       the run stopped early (--outage-after)
  2    configuration or usage error: bad option or id, database unreachable or not migrated,
       a role that row-level security filters, Wix refusing the app credentials
  130  stopped by SIGINT/SIGTERM (tenants in flight committed, summary printed)
"""
EXIT_OK, EXIT_FAILURES, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
WIX_PER_INSTANCE_PER_MINUTE = 200  # API.md §8

log = logging.getLogger("tenancy.sync")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> dt.timedelta:
    """``30s``, ``15m``, ``24h``, ``1d``, ``250ms`` or plain seconds, as a timedelta."""
    match = _DURATION.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (examples: 30s, 15m, 24h, 1d)")
    return dt.timedelta(seconds=float(match[1]) * _UNITS[match[2] or "s"])


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's options."""
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--all", action="store_true", help="every tenant not synced since this run started (not only due)"
    )
    which.add_argument(
        "--instance",
        nargs="+",
        metavar="ID",
        default=[],
        help="sync these instance ids now; ids not in the table yet are registered first",
    )
    parser.add_argument(
        "--stale-after",
        type=parse_duration,
        default=dt.timedelta(hours=24),
        metavar="DURATION",
        help="a tenant is due when last synced longer ago than this (default: 24h)",
    )
    parser.add_argument(
        "--concurrency",
        type=_positive_int,
        default=8,
        metavar="N",
        help="worker threads in all, split across --processes (default: 8)",
    )
    parser.add_argument(
        "--processes",
        type=_positive_int,
        default=1,
        metavar="N",
        help="worker processes, this one included (forked; each its own GIL, engine and HTTP pool): "
        "more CPU for the sync on a machine with several cores (default: 1)",
    )
    parser.add_argument(
        "--every",
        type=parse_duration,
        metavar="DURATION",
        help="keep running: after each run wait DURATION, then run again, until SIGINT/SIGTERM",
    )
    parser.add_argument(
        "--rate",
        type=_positive_float,
        default=50.0,
        metavar="PER_SECOND",
        help="Wix requests per second across all workers (default: 50; Wix also gets at most "
        f"{WIX_PER_INSTANCE_PER_MINUTE} a minute per instance)",
    )
    parser.add_argument(
        "--remove-after",
        type=_positive_int,
        default=3,
        metavar="N",
        help=(
            "mark a tenant removed after N consecutive runs in which Wix said the app is gone "
            "(the token endpoint refused the instance, or Get App Instance answered 404) (default: 3)"
        ),
    )
    parser.add_argument(
        "--recheck-removed-after",
        type=parse_duration,
        default=DEFAULT_RECHECK_REMOVED_AFTER,
        metavar="DURATION",
        help="how often removed tenants are checked again (default: 7d)",
    )
    parser.add_argument(
        "--retry-backoff",
        type=parse_duration,
        default=dt.timedelta(minutes=1),
        metavar="DURATION",
        help="first wait before retrying a failed tenant; doubles per failure (default: 1m)",
    )
    parser.add_argument(
        "--retry-backoff-max",
        type=parse_duration,
        default=dt.timedelta(hours=1),
        metavar="DURATION",
        help="longest wait before retrying a failed tenant (default: 1h)",
    )
    parser.add_argument(
        "--outage-after",
        type=_positive_int,
        default=DEFAULT_OUTAGE_AFTER,
        metavar="N",
        help="stop the run early when N tenants in a row find Wix unavailable (connection errors, "
        f"timeouts, 5xx); only those are charged a failure (default: {DEFAULT_OUTAGE_AFTER})",
    )
    parser.add_argument(
        "--timeout", type=_positive_float, default=10.0, metavar="SECONDS", help="HTTP timeout (default: 10)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the report as JSON on stdout (one line per run)"
    )
    parser.add_argument(
        "--no-copy",
        action="store_true",
        help="after each run, do not copy the origin's data into duplicated sites (`tenancy copy` does it)",
    )
    add_skip_option(parser, "--copy-skip-table")
    parser.add_argument(
        "--metrics-file",
        metavar="PATH",
        help="after each run, write Prometheus metrics to PATH (atomically; for node_exporter's "
        "textfile collector; needs wix-tenancy[metrics])",
    )


def run(args: argparse.Namespace) -> int:
    """Run the sync once, or every ``--every``; returns the exit code."""
    try:
        instances = [parse_instance_id(value) for value in args.instance]
    except InvalidInstanceId as exc:
        raise ConfigurationError(f"--instance: {exc}") from None
    if args.metrics_file:
        require_prometheus_client()  # fail before syncing, not after
    settings = Settings.from_env()
    url = settings.require_admin_database_url("tenancy sync")
    options = SyncOptions(
        mode="instances" if instances else "all" if args.all else "due",
        instances=instances,
        stale_after=args.stale_after,
        concurrency=args.concurrency,
        processes=args.processes,
        remove_after=args.remove_after,
        recheck_removed_after=args.recheck_removed_after,
        outage_after=args.outage_after,
        backoff=Backoff(base=args.retry_backoff, cap=max(args.retry_backoff, args.retry_backoff_max)),
        rate_limit=TokenBucket(args.rate),
        instance_limit=KeyedRateLimiter(WIX_PER_INSTANCE_PER_MINUTE),
    )
    client = WixClient.from_settings(settings, timeout=args.timeout, pool_size=max(4, args.concurrency))
    engine = _engine(url, args.concurrency)
    try:
        with database_errors(url), engine.connect() as connection:
            require_rls_bypass(connection, "tenancy sync")
    except ConfigurationError:
        engine.dispose()
        client.close()
        raise
    stop = threading.Event()
    try:
        with _signals_stop(stop), database_errors(url):
            while True:
                code = _run_once(
                    engine, client, options, stop, as_json=args.json, metrics_file=args.metrics_file
                )
                if not args.no_copy:
                    code = max(code, _copy_duplicated_sites(engine, args.skip_table))
                if args.every is None or stop.is_set():
                    return code
                log.info("next sync run in %s", args.every)
                if stop.wait(args.every.total_seconds()):
                    return code  # stopped between runs: a normal shutdown
    except WixAuthError as exc:  # sync() handles per-instance refusals itself
        message = f"Wix refused the app credentials (WIX_APP_ID/WIX_APP_SECRET); sync stopped: {exc}"
        raise ConfigurationError(message) from None
    finally:
        client.close()
        engine.dispose()


def _copy_duplicated_sites(engine: Engine, skip_tables: list[str]) -> int:
    """Copy the origin's rows into tenants that appeared with an origin (tenancy.lifecycle)."""
    if engine.dialect.name != "postgresql":
        return EXIT_OK  # the lifecycle needs PostgreSQL's catalog
    try:
        report = copy_pending(engine, skip_tables=skip_tables)
    except LifecycleError as exc:
        raise ConfigurationError(str(exc)) from None
    if report.copies:
        log.info("%s", report.summary())  # stderr: stdout keeps one report line per run
    return EXIT_OK if report.ok else EXIT_FAILURES


def _engine(url: str, concurrency: int) -> Engine:
    options: dict[str, Any] = {"pool_pre_ping": True}
    if not url.startswith("sqlite"):
        # One connection per worker, plus one for registering and counting.
        options.update(pool_size=concurrency + 1, max_overflow=2)
    return make_engine(url, **options)


def _run_once(
    engine: Engine,
    client: WixClient,
    options: SyncOptions,
    stop: threading.Event,
    *,
    as_json: bool,
    metrics_file: str | None = None,
) -> int:
    with _progress() as (on_start, on_progress):
        report = sync(engine, client, options, stop=stop, on_start=on_start, on_progress=on_progress)
    if metrics_file:
        write_metrics(metrics_file, report, engine, stale_after=options.stale_after)
    if as_json:
        print(report.to_json(), flush=True)
    else:
        print(report.summary(), flush=True)
    if report.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if report.ok else EXIT_FAILURES


@contextmanager
def _progress() -> Iterator[tuple[Callable[[int], None], Callable[[SyncReport], None]]]:
    """A tqdm bar on a terminal, else a log line every 5% (and at the end)."""
    # "logged": the processed count of the last line. Workers call on_progress concurrently
    # and each reads the shared report, so several callers can see the same count (the last
    # tenants finishing together all saw N/N): a count is logged once, whoever sees it first.
    state: dict[str, Any] = {"total": 0, "bar": None, "step": 1, "logged": 0}
    lock = threading.Lock()
    tty = sys.stderr.isatty()

    def on_start(total: int) -> None:
        state["total"], state["step"] = total, max(1, total // 20)
        log.info("sync: %d tenant(s) to do", total)
        if tty:
            from tqdm import tqdm

            state["bar"] = tqdm(total=total, unit="tenant", file=sys.stderr, dynamic_ncols=True)

    def on_progress(report: SyncReport) -> None:
        with lock:
            bar = state["bar"]
            if bar is not None:
                bar.set_postfix(failed=report.failed, refresh=False)
                bar.update(1)
                return
            done, step, last = report.processed, state["step"], state["logged"]
            if done > last and (done // step > last // step or done >= state["total"]):
                state["logged"] = done
                log.info(
                    "sync: %d/%d done (%d changed, %d unchanged, %d removed, %d failed)",
                    done,
                    state["total"],
                    report.changed,
                    report.unchanged,
                    report.removed,
                    report.failed,
                )

    try:
        if tty:
            from tqdm.contrib.logging import logging_redirect_tqdm

            # Log lines go through tqdm.write, above the bar instead of through it.
            with logging_redirect_tqdm():
                yield on_start, on_progress
        else:
            yield on_start, on_progress
    finally:
        if state["bar"] is not None:
            state["bar"].close()


@contextmanager
def _signals_stop(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set ``stop`` (finish in-flight tenants); a second one stops hard."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        log.warning("%s: finishing the tenants in flight, then stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
