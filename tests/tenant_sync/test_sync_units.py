"""The sync's small parts: durations, backoff, rate limits and the report (no database)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import uuid

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from tenancy.commands.sync import parse_duration
from tenancy.tenant_sync.job import Backoff
from tenancy.tenant_sync.ratelimit import KeyedRateLimiter, TokenBucket
from tenancy.tenant_sync.report import MAX_LISTED_FAILURES, SyncReport
from tenancy.tenant_sync.store import Selection


class FakeTime:
    """A monotonic clock whose sleep advances it (and records the waits)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("24h", 86400), ("1d", 86400), ("250ms", 0.25), ("90", 90), ("1.5h", 5400)],
)
def test_durations_parse(text: str, seconds: float) -> None:
    """Durations take a number and an optional unit (ms, s, m, h, d)."""
    assert parse_duration(text) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "soon", "-5m", "5 minutes", "1w"])
def test_bad_durations_are_usage_errors(text: str) -> None:
    """Anything else is an argparse type error (exit 2)."""
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration(text)


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    """The wait doubles per consecutive failure, half of it random, never above the cap."""
    backoff = Backoff(base=dt.timedelta(minutes=1), cap=dt.timedelta(hours=1))
    rng = random.Random(0)
    for failures, full in [(1, 60), (2, 120), (3, 240), (7, 3600), (50, 3600), (10_000, 3600)]:
        wait = backoff.delay(failures, rng).total_seconds()
        assert full / 2 <= wait <= full


def test_token_bucket_allows_a_burst_then_paces() -> None:
    """A bucket of rate 10/s and burst 10 lets 10 through at once, then one per 0.1 s."""
    t = FakeTime()
    bucket = TokenBucket(10, clock=t.clock, sleep=t.sleep)
    for _ in range(10):
        bucket.acquire()
    assert t.sleeps == []
    for _ in range(5):
        bucket.acquire()
    assert t.now == pytest.approx(0.5)


def test_per_instance_limit_is_200_a_minute_and_independent_per_key() -> None:
    """Each instance gets 200 requests in any minute; another instance is not slowed down by it."""
    t = FakeTime()
    limiter = KeyedRateLimiter(200, clock=t.clock, sleep=t.sleep)
    busy, other = uuid.uuid4(), uuid.uuid4()
    for _ in range(200):
        limiter.acquire(busy)
    assert t.now == 0
    limiter.acquire(other)
    assert t.now == 0
    limiter.acquire(busy)
    assert t.now == pytest.approx(60)


def test_per_instance_limit_never_allows_more_than_200_in_any_minute() -> None:
    """Spread or bursty, no 60-second window ever holds more than 200 acquisitions of one key
    (a token bucket with a burst of 200 would let up to 400 through in one minute)."""
    t = FakeTime()
    limiter = KeyedRateLimiter(200, clock=t.clock, sleep=t.sleep)
    times = []
    for n in range(1000):
        limiter.acquire("instance")
        times.append(t.now)
        t.now += 0.05 if n % 3 else 0.0
    for i, start in enumerate(times):
        inside = sum(1 for when in times[i:] if when < start + 60)
        assert inside <= 200


def test_per_instance_limiter_memory_is_bounded() -> None:
    """However many instances pass through, at most max_keys logs are kept."""
    t = FakeTime()
    limiter = KeyedRateLimiter(200, max_keys=50, clock=t.clock, sleep=t.sleep)
    for _ in range(1000):
        limiter.acquire(uuid.uuid4())
        t.now += 0.01
    assert len(limiter) == 50


def test_report_json_and_summary() -> None:
    """The JSON has the counts and failures; the summary lists each failure with its reason."""
    report = SyncReport(started_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    ok, bad = uuid.uuid4(), uuid.uuid4()
    report.record("changed", ok)
    report.record("unchanged", uuid.uuid4())
    report.record("removed", uuid.uuid4())
    report.record(
        "failed", bad, "Wix get_app_instance: HTTP 503 [request id 1.2]", status=503, request_id="1.2"
    )
    report.finished_at = report.started_at + dt.timedelta(seconds=2)
    data = json.loads(report.to_json())
    assert {k: data[k] for k in ("synced", "changed", "unchanged", "removed", "failed")} == {
        "synced": 2,
        "changed": 1,
        "unchanged": 1,
        "removed": 1,
        "failed": 1,
    }
    assert data["failures"] == [
        {
            "instance_id": str(bad),
            "reason": "Wix get_app_instance: HTTP 503 [request id 1.2]",
            "status": 503,
            "request_id": "1.2",
        }
    ]
    assert data["stopped_early"] is None
    assert not report.ok
    assert f"failed {bad}: Wix get_app_instance: HTTP 503" in report.summary()


def test_report_lists_a_bounded_number_of_failures() -> None:
    """Failures beyond the cap are counted, not listed (the report stays small)."""
    report = SyncReport(started_at=dt.datetime.now(dt.UTC))
    for _ in range(MAX_LISTED_FAILURES + 5):
        report.record("failed", uuid.uuid4(), "down")
    data = report.to_dict()
    assert data["failed"] == MAX_LISTED_FAILURES + 5 and data["failures_not_listed"] == 5
    assert "and 5 more failures" in report.summary()


@pytest.mark.parametrize(("dialect", "locks"), [(postgresql.dialect(), True), (sqlite.dialect(), False)])
def test_claims_lock_rows_on_postgresql_and_render_no_lock_on_sqlite(dialect, locks) -> None:
    """The claim is FOR UPDATE SKIP LOCKED on PostgreSQL; SQLite (one process) gets plain SELECTs."""
    now = dt.datetime.now(dt.UTC)
    selection = Selection(mode="due", since=now, now=now, stale_before=now)
    for query in selection.phases():
        sql = str(query.limit(1).with_for_update(skip_locked=True).compile(dialect=dialect))
        assert ("FOR UPDATE SKIP LOCKED" in sql) is locks and ("FOR UPDATE" in sql) is locks
