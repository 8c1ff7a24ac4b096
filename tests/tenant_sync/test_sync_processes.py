"""``SyncOptions(processes=N)``: one run across forked worker processes, on real PostgreSQL
and the emulator over HTTP."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import uuid

import pytest
import requests
from sqlalchemy import text

from tenancy.emulator import Emulator
from tenancy.errors import ConfigurationError, InvalidInstanceId, TenancyError
from tenancy.tenant_sync.job import SyncOptions, SyncReport, sync
from tenancy.tenant_sync.processes import split
from tenancy.wix.client import WixClient
from tests.sync_helpers import consistent, rows, seed
from tests.wix_helpers import client_for

pytestmark = pytest.mark.postgres


def test_two_processes_sync_every_tenant_once_and_merge_the_report(db) -> None:
    """Two processes split one run: every tenant synced, each fetched exactly once, the
    report (counts, failures with reasons, progress) covers both processes."""
    with Emulator(sites=48, seed=21, latency=0.02) as emu, client_for(emu) as client:
        seed(db.engine, emu.instance_ids)
        failing = emu.instance_ids[:6]
        for iid in failing:
            emu.set_instance_status(iid, 403)
        seen: list[tuple[str, int]] = []
        lock = threading.Lock()

        def progress(report: SyncReport) -> None:
            with lock:
                seen.append((threading.current_thread().name, report.processed))

        report = sync(
            db.engine, client, SyncOptions(mode="all", concurrency=4, processes=2), on_progress=progress
        )
        assert (report.synced, report.changed, report.failed, report.removed) == (42, 42, 6, 0)
        assert sorted(str(f.instance_id) for f in report.failures) == sorted(failing)
        assert all("HTTP 403" in f.reason and f.status == 403 and f.request_id for f in report.failures)
        assert not report.interrupted and report.stopped_early is None
        assert {emu.count("get_app_instance", iid) for iid in emu.instance_ids} == {1}
        # Progress for each tenant, from this process's workers and from the other process.
        assert len(seen) == 48 and max(n for _, n in seen) == 48
        names = {name for name, _ in seen}
        assert any(n.startswith("tenancy-sync-process-") for n in names), names
        assert any(not n.startswith("tenancy-sync-process-") for n in names), names
    table = rows(db.engine)
    assert all(consistent(row) for row in table.values())
    assert sum(1 for row in table.values() if row["last_synced_at"] is not None) == 42
    assert all("HTTP 403" in table[uuid.UUID(iid)]["last_sync_error"] for iid in failing)


@pytest.mark.slow
def test_a_killed_worker_process_stops_the_run_and_its_claims_are_free_at_once(db) -> None:
    """SIGKILL of a worker process: the run raises naming it, nothing it held stays locked,
    and the next run syncs the rest (only tenants in flight at the kill fetched twice)."""
    with Emulator(sites=40, seed=22, latency=0.1) as emu, client_for(emu) as client:
        seed(db.engine, emu.instance_ids)
        killed: list[int] = []
        lock = threading.Lock()

        def kill_a_worker_process(report: SyncReport) -> None:
            with lock:
                children = multiprocessing.active_children()
                if report.processed >= 4 and not killed and children:
                    killed.append(children[0].pid or 0)
                    os.kill(children[0].pid or 0, signal.SIGKILL)

        options = SyncOptions(mode="all", concurrency=4, processes=2)
        with pytest.raises(TenancyError, match=r"sync worker process 1 \(pid \d+\) exited with code -9"):
            sync(db.engine, client, options, on_progress=kill_a_worker_process)
        assert killed
        # Free at once: every row can be locked without waiting (no lease to expire).
        with db.engine.begin() as conn:
            locked = conn.execute(text("SELECT count(*) FROM (SELECT 1 FROM tenants FOR UPDATE NOWAIT) t"))
            assert locked.scalar_one() == 40
        assert all(consistent(row) for row in rows(db.engine).values())
        done = {iid for iid, row in rows(db.engine).items() if row["last_synced_at"] is not None}
        assert 4 <= len(done) < 40
        rest = sync(db.engine, client, SyncOptions(concurrency=4, processes=2))
        assert (rest.synced, rest.failed) == (40 - len(done), 0)
        counts = {uuid.UUID(iid): emu.count("get_app_instance", iid) for iid in emu.instance_ids}
        assert all(counts[iid] == 1 for iid in done)  # committed before the kill: never again
        assert sum(c - 1 for c in counts.values()) <= 2  # the killed process's in-flight ones
    table = rows(db.engine)
    assert all(row["last_synced_at"] is not None and consistent(row) for row in table.values())


def test_stop_reaches_every_process(db) -> None:
    """Setting ``stop`` ends the run in every process after their tenants in flight; the
    next run does the rest, no tenant fetched twice."""
    with Emulator(sites=40, seed=23, latency=0.05) as emu, client_for(emu) as client:
        seed(db.engine, emu.instance_ids)
        stop = threading.Event()

        def stop_early(report: SyncReport) -> None:
            if report.processed >= 6:
                stop.set()

        first = sync(
            db.engine,
            client,
            SyncOptions(mode="all", concurrency=4, processes=2),
            stop=stop,
            on_progress=stop_early,
        )
        assert first.interrupted and 6 <= first.synced < 40
        rest = sync(db.engine, client, SyncOptions(concurrency=4, processes=2))
        assert first.synced + rest.synced == 40
        assert {emu.count("get_app_instance", iid) for iid in emu.instance_ids} == {1}


def test_options_are_checked_when_made() -> None:
    """Bad options fail when the SyncOptions is built, with a tenancy error naming them."""
    with pytest.raises(ConfigurationError, match="processes"):
        SyncOptions(concurrency=2, processes=3)
    with pytest.raises(ConfigurationError, match="at least 1"):
        SyncOptions(processes=0)
    with pytest.raises(InvalidInstanceId):
        SyncOptions(mode="instances", instances=["not-a-uuid"])
    with pytest.raises(ConfigurationError, match="not one string"):
        SyncOptions(mode="instances", instances=str(uuid.uuid4()))  # type: ignore[arg-type]
    ids = [str(uuid.uuid4())] * 2
    assert SyncOptions(mode="instances", instances=ids).instance_ids == (uuid.UUID(ids[0]),)


def test_workers_are_split_evenly_between_processes() -> None:
    assert split(32, 2) == [16, 16] and split(8, 3) == [3, 3, 2] and split(5, 5) == [1] * 5


def test_after_fork_needs_a_client_that_owns_its_session() -> None:
    """A client given its own ``http=`` session cannot be re-created in a forked worker: a
    clear ConfigurationError, not requests shared by two processes on one socket."""
    with Emulator(sites=1, seed=24) as emu:
        own = WixClient(emu.app_id, emu.app_secret, base_url=emu.base_url)
        own.app_access_token(emu.instance_ids[0])
        own.after_fork()  # a new pool and an empty token cache: the next call asks Wix again
        emu.reset_counts()
        own.app_access_token(emu.instance_ids[0])
        assert emu.count("access_token") == 1
        own.close()
        with requests.Session() as session:
            given = WixClient(emu.app_id, emu.app_secret, base_url=emu.base_url, http=session)
            with pytest.raises(ConfigurationError, match="http="):
                given.after_fork()
