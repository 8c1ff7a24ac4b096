"""A sync run across several worker processes: this one and ``processes - 1`` forked children.

Threads in one process share one GIL: with enough workers the sync's own CPU (HTTP client,
JSON, the SQL of each claim and write) becomes the bound, not Wix's latency. Each extra
process runs its share of the worker threads with its own GIL, engine connections and
HTTP pool; they split the work through the claims alone (row locks, ``SKIP LOCKED``,
one ``since`` for the whole run), exactly as separately started ``tenancy sync``
processes do, so no tenant is fetched twice.

Children are forked (not spawned: importing the stack afresh costs seconds, more than a
whole run of a thousand tenants) before this process starts its own workers. Each child
drops its inherited database and HTTP connections (``engine.dispose(close=False)``,
:meth:`WixClient.after_fork`), reports every tenant's outcome over a pipe as it happens
(so the run's report and ``on_progress`` cover every process), and its end state last.
``stop`` and a child's early stop (Wix down, the app's credentials refused) reach every
process through a shared event. A child that dies (killed, out of memory) releases its
claims with its connections (nothing to wait for); the others stop as after a crashed
worker thread, and :func:`tenancy.sync` raises.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import logging
import multiprocessing
import random
import signal
import threading
import uuid
import warnings
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as ProcessEvent
from types import FrameType
from typing import Any

from sqlalchemy import Engine

from tenancy.errors import ConfigurationError, TenancyError, WixAuthError
from tenancy.tenant_sync.options import SyncOptions
from tenancy.tenant_sync.ratelimit import KeyedRateLimiter, TokenBucket
from tenancy.tenant_sync.report import Outcome, SyncReport
from tenancy.tenant_sync.workers import RunOutcome, run_workers
from tenancy.wix.client import WixClient

__all__ = ["run_processes", "split"]

log = logging.getLogger("tenancy.sync")

_POLL = 0.05  # seconds between looks at the two stop events (a stop reaches all within this)


def split(total: int, parts: int) -> list[int]:
    """``total`` workers as ``parts`` shares differing by at most one, larger first."""
    return [total // parts + (1 if n < total % parts else 0) for n in range(parts)]


def run_processes(
    engine: Engine,
    client: WixClient,
    options: SyncOptions,
    since: dt.datetime,
    report: SyncReport,
    stop: threading.Event,
    on_progress: Callable[[SyncReport], None] | None,
) -> RunOutcome:
    """Run ``options.processes`` processes' worth of workers; the merged outcome."""
    if "fork" not in multiprocessing.get_all_start_methods():
        raise ConfigurationError("processes > 1 needs a platform with fork (Linux, macOS); use processes=1")
    context = multiprocessing.get_context("fork")
    shares = split(options.concurrency, options.processes)
    rng = options.rng or random.Random()
    mine = _share(options, shares[0], random.Random(rng.random()))
    shared_stop = context.Event()
    children: list[_Child] = []
    # Objects that exist now are left out of the children's garbage collections: a collection
    # touches every object it scans, copying the parent's whole heap page by page into each
    # child (copy-on-write), CPU the children would otherwise spend on every run.
    gc.freeze()
    try:
        _fork(context, children, shares, options, rng, engine, client, since, shared_stop)
    finally:
        gc.unfreeze()
    readers = [
        threading.Thread(
            target=child.read,
            args=(report, on_progress, shared_stop),
            name=f"tenancy-sync-process-{child.number}",  # on_progress runs here for its tenants
            daemon=True,
        )
        for child in children
    ]
    for reader in readers:
        reader.start()
    finished = threading.Event()
    bridge = threading.Thread(target=_bridge, args=(stop, shared_stop, finished), daemon=True)
    bridge.start()
    try:
        outcome = run_workers(
            engine, client, mine, since, report, stop, on_progress, share=(0, options.processes)
        )
        if outcome != RunOutcome():
            shared_stop.set()
        for child, reader in zip(children, readers, strict=True):
            reader.join()
            child.process.join()
    except BaseException:  # e.g. KeyboardInterrupt while waiting: the children stop too
        shared_stop.set()
        raise
    finally:
        finished.set()
        bridge.join()
    return _merge(outcome, children)


def _fork(
    context: Any,
    children: list[_Child],
    shares: list[int],
    options: SyncOptions,
    rng: random.Random,
    engine: Engine,
    client: WixClient,
    since: dt.datetime,
    shared_stop: ProcessEvent,
) -> None:
    """Start a child per share but the first (this process's own), appended to ``children``."""
    for number, share in enumerate(shares[1:], start=1):
        receiver, sender = context.Pipe(duplex=False)
        child_options = _share(options, share, random.Random(rng.random()))
        process = context.Process(
            target=_child_main,
            args=(engine, client, child_options, since, sender, shared_stop, (number, len(shares))),
            name=f"tenancy-sync-process-{number}",
            daemon=True,
        )
        with warnings.catch_warnings():
            # Python 3.12+ warns on fork() in a process with threads (deadlocks in the child on
            # a lock some thread held). The child touches no such lock: it replaces the engine's
            # pool and the client's session and locks, and logging re-creates its own at fork.
            warnings.filterwarnings(
                "ignore", message=r".*fork\(\) may lead to deadlocks", category=DeprecationWarning
            )
            process.start()
        sender.close()  # the child holds the only writing end: its exit is our EOF
        children.append(_Child(number, process, receiver))


def _share(options: SyncOptions, workers: int, rng: random.Random) -> SyncOptions:
    """One process's options: its workers, its part of the overall rate, its own limiters."""
    fraction = workers / options.concurrency
    bucket = options.rate_limit
    per_instance = options.instance_limit
    return dataclasses.replace(
        options,
        concurrency=workers,
        processes=1,
        # A process's tenants are its own, so a per-instance limiter needs no sharing.
        rate_limit=TokenBucket(bucket.rate * fraction, burst=max(1.0, bucket.burst * fraction))
        if bucket
        else None,
        instance_limit=KeyedRateLimiter(per_instance.per_minute, window=per_instance.window)
        if per_instance
        else None,
        rng=rng,
    )


def _bridge(stop: threading.Event, shared_stop: ProcessEvent, finished: threading.Event) -> None:
    """Make ``stop`` and ``shared_stop`` one: whichever is set first sets the other."""
    while not finished.wait(_POLL):
        if stop.is_set():
            shared_stop.set()
        elif shared_stop.is_set():
            stop.set()


@dataclasses.dataclass
class _Child:
    """A forked worker process as the parent sees it."""

    number: int
    process: multiprocessing.process.BaseProcess
    receiver: Connection
    end: tuple[str | None, tuple[str, int | None, str | None] | None, str | None] | None = None

    def read(
        self, report: SyncReport, on_progress: Callable[[SyncReport], None] | None, shared_stop: ProcessEvent
    ) -> None:
        """Record the child's outcomes in the run's report as they come, then its end."""
        while True:
            try:
                kind, payload = self.receiver.recv()
            except (EOFError, OSError):
                break
            if kind == "outcome":
                outcome, instance_id, reason, status, request_id = payload
                report.record(outcome, instance_id, reason, status=status, request_id=request_id)
                if on_progress is not None:
                    on_progress(report)
            else:
                self.end = payload
        self.receiver.close()
        if self.end is None:  # died without a word: stop the others, as a crashed thread does
            log.error("sync worker process %d died; stopping the run", self.number)
            shared_stop.set()

    def failure(self) -> TenancyError | WixAuthError | None:
        """The error this child's end calls for, if any."""
        if self.end is None:
            self.process.join()
            return TenancyError(
                f"sync worker process {self.number} (pid {self.process.pid}) exited with code "
                f"{self.process.exitcode} before finishing; the tenants it had claimed were "
                "released with its connections and are due again"
            )
        _, fatal, crash = self.end
        if fatal is not None:
            message, status, request_id = fatal
            return WixAuthError(message, status=status, request_id=request_id)
        if crash is not None:
            return TenancyError(f"sync worker process {self.number} failed: {crash}")
        return None


def _merge(mine: RunOutcome, children: list[_Child]) -> RunOutcome:
    outcome = RunOutcome(outage=mine.outage, fatal=mine.fatal, crash=mine.crash)
    for child in children:
        if child.end is not None and child.end[0] is not None and outcome.outage is None:
            outcome.outage = child.end[0]
        error = child.failure()
        if isinstance(error, WixAuthError):
            outcome.fatal = outcome.fatal or error
        elif error is not None:
            outcome.crash = outcome.crash or error
    return outcome


class _ForwardingReport(SyncReport):
    """A child's report: every outcome also goes to the parent, as it happens."""

    def __init__(self, started_at: dt.datetime, sender: Connection) -> None:
        super().__init__(started_at=started_at)
        self._sender = sender
        self._send_lock = threading.Lock()  # Connection.send is not thread-safe

    def record(
        self,
        outcome: Outcome,
        instance_id: uuid.UUID,
        reason: str | None = None,
        *,
        status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().record(outcome, instance_id, reason, status=status, request_id=request_id)
        with self._send_lock:
            self._sender.send(("outcome", (outcome, instance_id, reason, status, request_id)))


def _child_main(
    engine: Engine,
    client: WixClient,
    options: SyncOptions,
    since: dt.datetime,
    sender: Connection,
    shared_stop: ProcessEvent,
    share: tuple[int, int],
) -> None:
    """A forked worker process: its share of the workers, outcomes and end sent to the parent."""
    engine.dispose(close=False)  # the parent's pooled connections stay the parent's
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()  # Ctrl-C reaches the whole process group: finish in-flight tenants

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    finished = threading.Event()
    threading.Thread(target=_bridge, args=(stop, shared_stop, finished), daemon=True).start()
    end: tuple[Any, ...]
    try:
        client.after_fork()
        report = _ForwardingReport(since, sender)
        outcome = run_workers(engine, client, options, since, report, stop, None, share=share)
        fatal = outcome.fatal
        crash = f"{type(outcome.crash).__name__}: {outcome.crash}" if outcome.crash is not None else None
        end = (outcome.outage, (str(fatal), fatal.status, fatal.request_id) if fatal else None, crash)
        if outcome != RunOutcome():
            shared_stop.set()
    except Exception as exc:
        end = (None, None, f"{type(exc).__name__}: {exc}")
        shared_stop.set()
    finished.set()
    sender.send(("end", end))
    sender.close()
    engine.dispose()
