"""``tenancy.sync``: refresh the ``tenants`` table from Wix's Get App Instance.

Orchestration only: register the ids of an ``"instances"`` run, then run the workers in this
process (:mod:`.workers`) or across several (:mod:`.processes`), and turn how they ended into
the report or the error to raise.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable

from sqlalchemy import Engine

from tenancy.tenant_sync.breaker import DEFAULT_OUTAGE_AFTER
from tenancy.tenant_sync.options import DEFAULT_RECHECK_REMOVED_AFTER, DEFAULT_STALE_AFTER, SyncOptions
from tenancy.tenant_sync.report import SyncReport
from tenancy.tenant_sync.store import (
    Backoff,
    count_claimable,
    register_instances,
)
from tenancy.tenant_sync.workers import RunOutcome, run_workers, selection
from tenancy.wix.client import WixClient

__all__ = [
    "DEFAULT_OUTAGE_AFTER",
    "DEFAULT_RECHECK_REMOVED_AFTER",
    "DEFAULT_STALE_AFTER",
    "Backoff",
    "SyncOptions",
    "SyncReport",
    "sync",
]

log = logging.getLogger("tenancy.sync")


def sync(
    engine: Engine,
    client: WixClient,
    options: SyncOptions | None = None,
    *,
    stop: threading.Event | None = None,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[SyncReport], None] | None = None,
) -> SyncReport:
    """Sync tenants from Wix into ``tenants`` on ``engine`` (the admin engine); returns the report.

    ``options`` (:class:`~tenancy.SyncOptions`, defaults when omitted) says which tenants
    and how: ``options.concurrency`` worker threads, split across ``options.processes``
    worker processes (this one included; on SQLite one thread, no row locks there).

    One tenant's failure never stops the others: it is recorded on its row
    (``last_sync_error``: the reason with Wix's status and request id) and listed in the
    report. After ``remove_after`` consecutive refusals that mean the app is gone (the token
    endpoint refusing the instance, Get App Instance's 404) a tenant is marked ``removed``
    and rechecked every ``recheck_removed_after``. Other failures (Get App Instance's
    401/403 included) are retried after ``backoff`` (exponential, jittered). When
    ``outage_after`` tenants in a row find Wix unavailable (connection errors, timeouts,
    5xx after retries), Wix itself is down: the run stops early with one log line naming
    the base URL (``report.stopped_early``), only those tenants are charged a failure,
    tenants claimed meanwhile are released untouched and the rest keep their schedule.

    Setting ``stop`` ends the run after the tenants in flight (``report.interrupted``).
    ``on_start(total)`` gets the number of tenants to do, ``on_progress(report)`` is called
    after each (from worker threads; with several processes, for every process's tenants).

    Raises :class:`~tenancy.WixAuthError` if the token endpoint refuses the app's
    credentials (the run stops: every tenant would fail, so none is charged with it). That
    is the only Wix answer that stops a run with an error.
    """
    options = options if options is not None else SyncOptions()
    if engine.dialect.name == "sqlite" and options.concurrency > 1:
        log.info("SQLite has no row locks: syncing with one worker")
        options = dataclasses.replace(options, concurrency=1, processes=1)
    stop = stop if stop is not None else threading.Event()
    started = options.clock()
    report = SyncReport(started_at=started)
    if options.mode == "instances":
        with engine.begin() as conn:
            added = register_instances(conn, options.instance_ids, now=started)
        if added:
            log.info("registered %d new tenant(s)", added)
    # One `since` for every worker and process: a run tries a tenant at most once.
    since = options.since or started
    if on_start is not None:
        with engine.connect() as conn:
            on_start(count_claimable(conn, selection(options, since)))
    if options.processes > 1:
        from tenancy.tenant_sync.processes import run_processes  # multiprocessing: only when asked

        outcome = run_processes(engine, client, options, since, report, stop, on_progress)
    else:
        outcome = run_workers(engine, client, options, since, report, stop, on_progress)
    report.finished_at = options.clock()
    report.stopped_early = outcome.outage
    report.interrupted = stop.is_set() and outcome == RunOutcome()  # stopped, and by nothing else
    if outcome.fatal is not None:
        raise outcome.fatal
    if outcome.crash is not None:
        raise outcome.crash
    return report
