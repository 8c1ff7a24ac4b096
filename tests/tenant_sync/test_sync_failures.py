"""The sync under Wix's documented failures (issue 11): one refused tenant, Wix down, rate limits.

Real PostgreSQL, the emulator over real HTTP; every case asserts the rows, the report and
(for the command line, in tests/commands/test_sync_cli.py) the exit code.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import update

from tenancy.emulator import Emulator
from tenancy.tenant_sync.breaker import DEFAULT_OUTAGE_AFTER
from tenancy.tenant_sync.job import SyncOptions, sync
from tenancy.tenant_sync.ratelimit import KeyedRateLimiter
from tenancy.tenants.model import Tenant
from tests.sync_helpers import TINY, SyncDb, consistent, rows, seed
from tests.wix_helpers import client_for

pytestmark = pytest.mark.postgres


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(sites=7, seed=41) as emulator:
        yield emulator


def _uuid(value: str) -> uuid.UUID:
    return uuid.UUID(value)


@pytest.mark.parametrize(("status", "code"), [(403, "PERMISSION_DENIED"), (401, "UNAUTHENTICATED")])
def test_get_app_instance_refusing_one_instance_fails_only_that_tenant(db, emu, client, status, code) -> None:
    """A 403 (or a 401 even with a fresh token) for one instance: its row records the reason and
    Wix's request id, it is listed in the report, not counted towards removal; the others sync."""
    seed(db.engine, emu.instance_ids)
    bad = emu.instance_ids[2]
    emu.set_instance_status(bad, status)
    report = sync(db.engine, client, SyncOptions(mode="all", concurrency=3, backoff=TINY))
    assert (report.synced, report.failed, report.removed, report.stopped_early) == (6, 1, 0, None)
    assert not report.ok
    (failure,) = report.failures
    assert (failure.instance_id, failure.status) == (_uuid(bad), status)
    assert failure.request_id and failure.request_id in failure.reason and code in failure.reason
    table = rows(db.engine)
    row = table.pop(_uuid(bad))
    assert row["status"] == "active" and row["last_synced_at"] is None
    assert row["last_sync_error"] == failure.reason  # reason and request id, on the row
    assert (row["consecutive_failures"], row["consecutive_refusals"]) == (1, 0)
    assert all(other["last_synced_at"] is not None and consistent(other) for other in table.values())


def test_a_404_for_one_instance_counts_towards_removal(db, emu, client) -> None:
    """Get App Instance's 404 (app gone) is recorded with its request id and, runs later, marks removed."""
    seed(db.engine, emu.instance_ids)
    gone = emu.instance_ids[0]
    emu.set_instance_status(gone, 404)
    first = sync(db.engine, client, SyncOptions(mode="all", remove_after=2, backoff=TINY))
    assert (first.synced, first.failed, first.removed) == (6, 1, 0)
    assert first.failures[0].status == 404 and first.failures[0].request_id
    row = rows(db.engine)[_uuid(gone)]
    assert (row["consecutive_refusals"], row["status"]) == (1, "active")
    assert "NOT_FOUND" in row["last_sync_error"] and first.failures[0].request_id in row["last_sync_error"]
    second = sync(
        db.engine, client, SyncOptions(mode="instances", instances=[gone], remove_after=2, backoff=TINY)
    )
    assert (second.removed, second.failed) == (1, 0)
    row = rows(db.engine)[_uuid(gone)]
    assert (row["status"], row["consecutive_refusals"]) == ("removed", 2)
    assert "NOT_FOUND" in row["last_sync_error"]


def test_the_token_endpoint_refusing_one_instance_never_stops_the_run(db, emu, client) -> None:
    """ "Not installed" from the token endpoint for one instance is that tenant's refusal; the run goes on."""
    seed(db.engine, emu.instance_ids)
    bad = emu.instance_ids[5]
    emu.set_instance_status(bad, 400, endpoint="access_token")
    report = sync(db.engine, client, SyncOptions(mode="all", concurrency=2, backoff=TINY))
    assert (report.synced, report.failed) == (6, 1)
    assert report.failures[0].request_id and report.failures[0].status == 400
    assert rows(db.engine)[_uuid(bad)]["consecutive_refusals"] == 1


@pytest.mark.parametrize("kind", ["drop", "503"])
@pytest.mark.parametrize("concurrency", [1, 4])
def test_wix_down_stops_the_run_and_charges_only_the_first_tenants(
    db, emu, client, kind, concurrency, caplog
) -> None:
    """Wix unreachable (or 5xx): the run stops after 3 tenants in a row, one ERROR line names the
    base URL; only those 3 rows carry a failure, the others are untouched and keep their schedule."""
    caplog.set_level(logging.DEBUG)
    seed(db.engine, emu.instance_ids)
    emu.set_outage(kind)
    report = sync(db.engine, client, SyncOptions(mode="due", concurrency=concurrency))
    assert report.failed == DEFAULT_OUTAGE_AFTER and report.synced == 0
    assert report.stopped_early is not None and emu.base_url in report.stopped_early
    assert not report.ok and not report.interrupted
    table = rows(db.engine)
    charged = [row for row in table.values() if row["last_attempt_at"] is not None]
    untouched = [row for row in table.values() if row["last_attempt_at"] is None]
    assert len(charged) == DEFAULT_OUTAGE_AFTER and len(untouched) == len(table) - DEFAULT_OUTAGE_AFTER
    assert all(row["consecutive_failures"] == 1 and row["last_sync_error"] for row in charged)
    assert all(row["consecutive_failures"] == 0 and row["last_sync_error"] is None for row in untouched)
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("tenancy")]
    outage = [r for r in loud if r.levelno == logging.ERROR]
    assert len(outage) == 1 and emu.base_url in outage[0].getMessage()
    assert len(loud) == 1 + DEFAULT_OUTAGE_AFTER  # plus one line per charged tenant, no retry lines
    # Wix is back: the next due run does the untouched tenants (the charged ones wait out backoff).
    emu.clear_outage()
    again = sync(db.engine, client, SyncOptions(mode="due", concurrency=concurrency))
    assert (again.synced, again.failed, again.stopped_early) == (len(untouched), 0, None)


def _order(db: SyncDb, instance_ids: list[str]) -> None:
    """Make a mode="all" run claim tenants in this order (oldest last_synced_at first)."""
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with db.engine.begin() as conn:
        for n, iid in enumerate(instance_ids):
            stmt = update(Tenant).where(Tenant.instance_id == _uuid(iid))
            conn.execute(stmt.values(last_synced_at=base + dt.timedelta(minutes=n)))


@pytest.mark.parametrize(
    ("pattern", "tripped"),
    [("x.x.x..", False), ("xx.x...", False), ("xxx....", True), (".xxx...", True)],
)
def test_only_tenants_unavailable_in_a_row_trip_the_breaker(db, emu, client, pattern, tripped) -> None:
    """The breaker counts consecutive tenants: failures separated by successes are each their own
    tenant's failure; three in a row stop the run, and the tenants after them stay untouched."""
    seed(db.engine, emu.instance_ids)
    assert sync(db.engine, client, SyncOptions(mode="all")).synced == 7
    _order(db, emu.instance_ids)
    down = [iid for iid, mark in zip(emu.instance_ids, pattern, strict=True) if mark == "x"]
    for iid in down:
        emu.respond_with("get_app_instance", status=503, body={"message": "", "details": {}}, instance_id=iid)
    report = sync(db.engine, client, SyncOptions(mode="all", concurrency=1, backoff=TINY))
    assert report.failed == 3 and (report.stopped_early is not None) is tripped
    last_down = pattern.rindex("x")
    expected_synced = pattern.count(".") - (len(pattern) - 1 - last_down if tripped else 0)
    assert report.synced == expected_synced
    assert {f.instance_id for f in report.failures} == {_uuid(iid) for iid in down}
    assert all(f.status == 503 and f.request_id for f in report.failures)


def test_the_per_instance_limit_end_to_end_with_an_injected_clock(db) -> None:
    """Wix's 200 requests a minute per instance: 150 runs on one tenant (300 requests) never get a
    429 from an emulator enforcing it, because the limiter waits on the clock it shares with the
    emulator; the same runs without the limiter are throttled. No real minute passes."""

    class FakeTime:
        def __init__(self) -> None:
            self.now = 5_000.0

        def clock(self) -> float:
            return self.now

        def sleep(self, seconds: float) -> None:
            self.now += seconds

    def runs(limited: bool, count: int) -> tuple[Emulator, int, float]:
        t = FakeTime()
        limiter = KeyedRateLimiter(200, clock=t.clock, sleep=t.sleep) if limited else None
        failed = 0
        with (
            Emulator(sites=1, rate_limit=200, clock=t.clock) as emu,
            client_for(emu, max_retries=0) as client,
        ):
            iid = emu.instance_ids[0]
            for _ in range(count):
                report = sync(
                    db.engine, client, SyncOptions(mode="instances", instances=[iid], instance_limit=limiter)
                )
                failed += report.failed
        return emu, failed, t.now - 5_000.0

    emu, failed, waited = runs(True, 150)
    assert failed == 0 and emu.count("rate_limited") == 0
    assert emu.count("get_app_instance") == 150 and emu.count("access_token") == 150
    # 300 requests: 200 at once, the other 100 once the first are a minute old.
    assert waited == pytest.approx(60, abs=0.01)
    emu, failed, waited = runs(False, 110)
    assert waited == 0 and failed >= 1 and emu.count("rate_limited") >= 1
