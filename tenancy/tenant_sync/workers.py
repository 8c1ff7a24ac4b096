"""One process's share of a sync run: its worker threads, each claiming, fetching and writing
one tenant per transaction (see :mod:`tenancy.tenant_sync.job`).

Worker threads (sharing one :class:`~tenancy.WixClient` and so one HTTP connection pool) each
loop: open a transaction on the admin engine, claim one tenant
(:class:`tenancy.tenant_sync.claims.ClaimQueue`: listed without a lock, locked by key), get an
app token and the instance from Wix while holding the lock, write the result or the failure,
commit. One tenant per transaction, one row in memory per worker: a kill loses only the
tenants in flight, and memory does not grow with the number of tenants.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import random
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from tenancy import log_context
from tenancy.errors import (
    WixAuthError,
    WixError,
    WixInstanceNotAccessible,
    WixUnavailable,
)
from tenancy.tenant_sync.breaker import OutageBreaker
from tenancy.tenant_sync.claims import ClaimQueue
from tenancy.tenant_sync.options import SyncOptions
from tenancy.tenant_sync.ratelimit import KeyedRateLimiter, TokenBucket
from tenancy.tenant_sync.report import Outcome, SyncReport
from tenancy.tenant_sync.store import (
    Backoff,
    Selection,
    failure_values,
    success_values,
    tenant_values,
)
from tenancy.tenant_sync.worker_db import WorkerDb, worker_db
from tenancy.wix.client import WixClient
from tenancy.wix.types import AppInstance

__all__ = ["RunOutcome", "run_workers", "selection"]

log = logging.getLogger("tenancy.sync")


class _Refused(Exception):
    """Wix refused this one instance; ``gone`` when the refusal says the app is not installed
    there any more (the token endpoint refusing it, or Get App Instance's 404), which counts
    towards marking the tenant removed. A 401/403 from Get App Instance (the token was just
    issued) is a failure of that tenant, not evidence of removal."""

    def __init__(self, error: WixError, *, gone: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.gone = gone


class _WriteRefused(Exception):
    """The database refused a fetched answer (the transaction is aborted)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Tenants listed per claim-queue refill: one listing statement per this many claims.
_CLAIM_BATCH = 64


def selection(options: SyncOptions, since: dt.datetime) -> Selection:
    """The run's :class:`~tenancy.tenant_sync.store.Selection` at this moment."""
    now = options.clock()
    return Selection(
        mode=options.mode,
        since=since,
        now=now,
        stale_before=now - options.stale_after,
        instance_ids=options.instance_ids,
    )


@dataclasses.dataclass
class RunOutcome:
    """How the workers of one process ended: the outage sentence, or the error to raise."""

    outage: str | None = None
    fatal: WixAuthError | None = None
    crash: Exception | None = None


def run_workers(
    engine: Engine,
    client: WixClient,
    options: SyncOptions,
    since: dt.datetime,
    report: SyncReport,
    stop: threading.Event,
    on_progress: Callable[[SyncReport], None] | None,
    *,
    share: tuple[int, int] = (0, 1),
) -> RunOutcome:
    """``options.concurrency`` worker threads in this process, until done or ``stop``.

    ``share``: this process's number and how many the run has (their claims prefer different
    tenants, see :mod:`~tenancy.tenant_sync.claims`).
    """
    job = _Job(
        engine=engine,
        client=client,
        selection=lambda: selection(options, since),
        report=report,
        remove_after=options.remove_after,
        recheck_removed_after=options.recheck_removed_after,
        backoff=options.backoff,
        breaker=OutageBreaker(options.outage_after),
        rate_limit=options.rate_limit,
        instance_limit=options.instance_limit,
        stop=stop,
        clock=options.clock,
        rng=options.rng or random.Random(),
        on_progress=on_progress,
        share=share,
    )
    threads = [
        threading.Thread(target=job.work, name=f"tenancy-sync-{n}", daemon=True)
        for n in range(options.concurrency)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return RunOutcome(outage=job.outage, fatal=job.fatal, crash=job.crash)


class _Job:
    """State shared by the worker threads of one run."""

    def __init__(
        self,
        *,
        engine: Engine,
        client: WixClient,
        selection: Callable[[], Selection],
        report: SyncReport,
        remove_after: int,
        recheck_removed_after: dt.timedelta,
        backoff: Backoff,
        breaker: OutageBreaker,
        rate_limit: TokenBucket | None,
        instance_limit: KeyedRateLimiter | None,
        stop: threading.Event,
        clock: Callable[[], dt.datetime],
        rng: random.Random,
        on_progress: Callable[[SyncReport], None] | None,
        share: tuple[int, int],
    ) -> None:
        self.engine = engine
        self.client = client
        self.selection = selection
        self.report = report
        self.remove_after = remove_after
        self.recheck_removed_after = recheck_removed_after
        self.backoff = backoff
        self.breaker = breaker
        self.outage: str | None = None
        self.rate_limit = rate_limit
        self.instance_limit = instance_limit
        self.stop = stop
        self.clock = clock
        self.rng = rng
        self.rng_lock = threading.Lock()
        self.on_progress = on_progress
        self.fatal: WixAuthError | None = None
        self.crash: Exception | None = None
        self.claims = ClaimQueue(selection, batch=_CLAIM_BATCH, share=share)
        self._fatal_lock = threading.Lock()

    def work(self) -> None:
        """One worker: claim, fetch, write, commit, until nothing is left or ``stop``."""
        try:
            with worker_db(self.engine) as db, log_context.scope():
                while not self.stop.is_set():
                    if not self._one(db):
                        return
        except Exception as exc:
            # A worker must not die silently (the database went away, a bug): stop the
            # run; sync() raises the error once the other workers are done.
            log.exception("sync worker failed; stopping the run")
            with self._fatal_lock:
                self.crash = self.crash or exc
            self.stop.set()

    def _one(self, db: WorkerDb) -> bool:
        """Sync the next tenant in its own transaction; ``False`` when none is left."""
        try:
            return self._sync_next(db)
        except BaseException:
            # The error ends the worker; what the transaction held is released (if the
            # connection is still there to say so).
            with contextlib.suppress(Exception):
                db.rollback()
            raise

    def _sync_next(self, db: WorkerDb) -> bool:
        # The claim opens the transaction; it is committed once the outcome is written, rolled
        # back on any other way out.
        error: WixError | None = None
        reason: str | None
        row = self.claims.claim(db)
        if row is None:
            db.rollback()
            return False
        iid: uuid.UUID = row["instance_id"]
        if self.stop.is_set():  # claimed just as the run stopped: release it, uncharged
            db.rollback()
            self.claims.done(iid)
            return False
        log_context.bind(iid)  # this tenant's log lines carry its instance_id
        try:
            app = self._fetch(iid)
        except WixAuthError as exc:  # the app's credentials: fatal, nothing charged
            db.rollback()
            self.claims.done(iid)
            self._abort(exc)
            return False
        except _Refused as exc:
            self.breaker.answered()
            error, reason = exc.error, _reason(exc.error)
            outcome = self._failure(db, row, reason, refused=exc.gone)
        except WixUnavailable as exc:
            charge, tripped = self.breaker.unavailable(str(exc))
            if tripped:
                self._outage(exc)
            if not charge:  # Wix is down: not this tenant's fault, it keeps its schedule
                db.rollback()
                self.claims.done(iid)
                return False
            error, reason = exc, _reason(exc)
            outcome = self._failure(db, row, reason, refused=False)
        except WixError as exc:  # 429 after retries, a garbled answer: Wix did answer
            self.breaker.answered()
            error, reason = exc, _reason(exc)
            outcome = self._failure(db, row, reason, refused=False)
        except Exception as exc:  # a bug or an unforeseen answer: recorded, run goes on
            log.exception("sync of instance %s failed unexpectedly", iid)
            reason = f"unexpected {type(exc).__name__}"
            outcome = self._failure(db, row, reason, refused=False)
        else:
            self.breaker.answered()
            try:
                outcome, reason = self._store(db, row, app), None
            except _WriteRefused as exc:  # rolled back: the failure goes in a new transaction
                outcome, reason = self._record_refused_write(db, iid, exc.reason)
        db.commit()
        self.claims.done(iid)
        status, request_id = (error.status, error.request_id) if error is not None else (None, None)
        self.report.record(outcome, iid, reason, status=status, request_id=request_id)
        if outcome == "failed":
            log.warning("instance %s not synced: %s", iid, reason)
        elif outcome == "removed":
            log.info("instance %s marked removed: %s", iid, reason)
        log_context.bind(None)
        self._progress()
        return True

    def _progress(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.report)

    def _fetch(self, iid: uuid.UUID) -> AppInstance:
        """App token, then Get App Instance: two requests, each under the rate limits."""
        try:
            self._throttle(iid)
            try:
                self.client.app_access_token(iid)
            except WixInstanceNotAccessible as exc:  # "no token for this instance"
                raise _Refused(exc, gone=True) from None
            self._throttle(iid)
            try:
                return self.client.get_app_instance(iid)
            except WixInstanceNotAccessible as exc:  # 404 "App instance not found": removed
                raise _Refused(exc, gone=exc.status == 404) from None
        finally:
            # A run touches each tenant once and the token outlives no stale_after worth
            # having; forgetting it keeps memory flat and makes the next try ask the token
            # endpoint (which is what recognises a removed app).
            self.client.forget_app_token(iid)

    def _throttle(self, iid: uuid.UUID) -> None:
        if self.rate_limit is not None:
            self.rate_limit.acquire()
        if self.instance_limit is not None:
            self.instance_limit.acquire(iid)

    def _store(self, db: WorkerDb, row: Mapping[str, Any], app: AppInstance) -> Outcome:
        # No savepoint (two round trips per tenant): a value the column refuses (say an
        # overlong locale) aborts the transaction, and the failure is recorded in a new one.
        outcome, values = success_values(row, tenant_values(app), now=self.clock())
        try:
            db.update(row["instance_id"], values)
        except DBAPIError as exc:
            db.rollback()
            raise _WriteRefused(f"database refused the answer ({type(exc.orig).__name__})") from None
        return outcome

    def _record_refused_write(self, db: WorkerDb, iid: uuid.UUID, reason: str) -> tuple[Outcome, str]:
        # Locked again by key; if another worker took it in between, it is theirs now.
        row = db.claim(self.selection(), iid)
        if row is None:
            return "failed", reason
        return self._failure(db, row, reason, refused=False), reason

    def _failure(self, db: WorkerDb, row: Mapping[str, Any], reason: str, *, refused: bool) -> Outcome:
        with self.rng_lock:
            rng = random.Random(self.rng.random())
        outcome, values = failure_values(
            row,
            reason,
            refused=refused,
            now=self.clock(),
            remove_after=self.remove_after,
            backoff=self.backoff,
            recheck_removed_after=self.recheck_removed_after,
            rng=rng,
        )
        db.update(row["instance_id"], values)
        return outcome

    def _outage(self, exc: WixUnavailable) -> None:
        """The one line a Wix outage gets, then stop the run (in-flight claims are released)."""
        message = (
            f"Wix unavailable at {self.client.base_url}: {self.breaker.threshold} tenants in a row "
            f"failed, the last with: {exc}"
        )
        with self._fatal_lock:
            self.outage = message
        log.error("%s; stopping the sync early (tenants not yet fetched keep their schedule)", message)
        self.stop.set()

    def _abort(self, exc: WixAuthError) -> None:
        with self._fatal_lock:
            if self.fatal is None:
                # Not logged here: sync() raises it once the workers stop, and whoever called
                # the sync reports it (the CLI as its one error line); logging it too said it twice.
                self.fatal = exc
        self.stop.set()


def _reason(error: WixError) -> str:
    """The failure as stored on the row and listed in the report: the error's message, with
    Wix's request id when the message does not carry it already."""
    reason = str(error)
    if error.request_id and error.request_id not in reason:
        reason += f" [request id {error.request_id}]"
    return reason
