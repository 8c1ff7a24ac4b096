"""Retention and purge, erasure on request: through tenancy.lifecycle.purge and the events."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import uuid

import pytest
from sqlalchemy import Engine, text

from tenancy.lifecycle import purge
from tenancy.tenant_sync.events import apply_event
from tenancy.wix.webhooks import WixEvent
from tests.lifecycle.schema import counts, fingerprint, populate

A, B = uuid.UUID(int=0xA), uuid.UUID(int=0xB)
NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)


def _event(kind: str, iid: uuid.UUID, **payload: object) -> WixEvent:
    return WixEvent(event_type=kind, instance_id=iid, payload={"appId": "app", **payload})


def _remove(admin: Engine, iid: uuid.UUID, *, days_ago: float) -> None:
    apply_event(admin, _event("AppRemoved", iid), now=NOW - dt.timedelta(days=days_ago))


def _row(admin: Engine, iid: uuid.UUID) -> dict[str, object]:
    with admin.connect() as conn:
        return dict(
            conn.execute(text("SELECT * FROM tenants WHERE instance_id = :i"), {"i": iid}).one()._mapping
        )


@pytest.fixture
def two_tenants(admin: Engine) -> Engine:
    with admin.begin() as conn:
        populate(conn, A)
        populate(conn, B, folders=2)
    return admin


def test_a_removed_tenant_past_retention_is_purged_and_the_other_is_untouched_to_the_byte(
    two_tenants: Engine,
) -> None:
    admin = two_tenants
    with admin.connect() as conn:
        before_a, before_b = counts(conn, A), fingerprint(conn, B)
    _remove(admin, A, days_ago=31)

    report = purge(admin, now=NOW, batch_size=3)

    assert [(t.instance_id, t.outcome) for t in report.tenants] == [(A, "purged")]
    assert report.tenants[0].counts == before_a
    with admin.connect() as conn:
        assert set(counts(conn, A).values()) == {0}
        assert fingerprint(conn, B) == before_b
    row = _row(admin, A)
    assert row["status"] == "removed" and row["purged_at"] == NOW and row["purge_started_at"] is None
    assert row["purge_counts"] == before_a
    assert row["site_display_name"] is None and row["site_url"] is None and row["raw"] is None
    assert row["removed_at"] == NOW - dt.timedelta(days=31)


def test_a_tenant_within_retention_or_active_keeps_its_data(two_tenants: Engine) -> None:
    admin = two_tenants
    _remove(admin, A, days_ago=29)
    with admin.connect() as conn:
        before = fingerprint(conn, A), fingerprint(conn, B)

    assert purge(admin, now=NOW).tenants == []
    assert purge(admin, now=NOW, retention=dt.timedelta(days=30)).tenants == []
    with admin.connect() as conn:
        assert (fingerprint(conn, A), fingerprint(conn, B)) == before
    # A shorter retention makes it due.
    assert [t.instance_id for t in purge(admin, now=NOW, retention=dt.timedelta(days=7)).tenants] == [A]


def test_dry_run_counts_per_table_and_deletes_nothing(two_tenants: Engine) -> None:
    admin = two_tenants
    _remove(admin, A, days_ago=40)
    with admin.connect() as conn:
        before = fingerprint(conn, A)

    report = purge(admin, now=NOW, dry_run=True)

    assert report.tenants[0].outcome == "would purge"
    assert report.tenants[0].counts == {table: n for table, (n, _) in before.items()}
    with admin.connect() as conn:
        assert fingerprint(conn, A) == before
    assert _row(admin, A)["purged_at"] is None


def test_a_second_purge_does_nothing_and_a_duplicate_app_removed_does_not_restart_retention(
    two_tenants: Engine,
) -> None:
    admin = two_tenants
    _remove(admin, A, days_ago=31)
    _remove(admin, A, days_ago=1)  # Wix delivers events more than once
    assert _row(admin, A)["removed_at"] == NOW - dt.timedelta(days=31)
    assert len(purge(admin, now=NOW).tenants) == 1
    tombstone = _row(admin, A)

    assert purge(admin, now=NOW + dt.timedelta(days=1)).tenants == []
    assert _row(admin, A) == tombstone


def test_a_reinstall_within_retention_finds_its_data_and_after_purge_starts_clean(
    two_tenants: Engine,
) -> None:
    admin = two_tenants
    with admin.connect() as conn:
        before = fingerprint(conn, A)
    _remove(admin, A, days_ago=10)
    apply_event(admin, _event("AppInstalled", A), now=NOW)
    assert _row(admin, A)["status"] == "active" and _row(admin, A)["removed_at"] is None
    assert purge(admin, now=NOW + dt.timedelta(days=60)).tenants == []
    with admin.connect() as conn:
        assert fingerprint(conn, A) == before

    _remove(admin, A, days_ago=31)
    purge(admin, now=NOW)
    apply_event(admin, _event("AppInstalled", A), now=NOW + dt.timedelta(days=1))
    row = _row(admin, A)
    assert row["status"] == "active" and row["removed_at"] is None and row["purged_at"] == NOW
    with admin.connect() as conn:
        assert set(counts(conn, A).values()) == {0}
    # Removed again later: a new retention, a new purge with its own counts.
    with admin.begin() as conn:
        conn.execute(text("INSERT INTO folders (instance_id, name) VALUES (:i, 'new')"), {"i": A})
    _remove(admin, A, days_ago=-5)  # removed 5 days after NOW
    report = purge(admin, now=NOW + dt.timedelta(days=40))
    assert [(t.instance_id, t.counts["folders"], t.rows) for t in report.tenants] == [(A, 1, 1)]


def test_a_removal_after_a_reactivation_that_kept_removed_at_starts_a_new_retention(admin: Engine) -> None:
    with admin.begin() as conn:
        populate(conn, A)
    _remove(admin, A, days_ago=60)
    with admin.begin() as conn:  # as a token's registration reactivates: removed_at left as it was
        conn.execute(text("UPDATE tenants SET status = 'active' WHERE instance_id = :i"), {"i": A})
    assert purge(admin, now=NOW).tenants == []  # active: never purged

    _remove(admin, A, days_ago=1)

    assert _row(admin, A)["removed_at"] == NOW - dt.timedelta(days=1)
    assert purge(admin, now=NOW).tenants == []


def test_erasure_on_request_purges_an_active_tenant_now(two_tenants: Engine) -> None:
    admin = two_tenants
    with admin.connect() as conn:
        before_b = fingerprint(conn, B)

    report = purge(admin, instances=[A], immediately=True, now=NOW)

    assert report.tenants[0].outcome == "purged" and report.tenants[0].rows > 0
    with admin.connect() as conn:
        assert set(counts(conn, A).values()) == {0}
        assert fingerprint(conn, B) == before_b
    row = _row(admin, A)
    assert row["status"] == "active" and row["purged_at"] == NOW and row["site_display_name"] is None


def test_a_batch_whose_rows_stay_locked_fails_that_tenant_and_a_rerun_finishes(two_tenants: Engine) -> None:
    admin = two_tenants
    _remove(admin, A, days_ago=31)
    with admin.connect() as holder:
        holder.execute(text("SELECT 1 FROM folders WHERE instance_id = :i FOR UPDATE"), {"i": A})
        report = purge(admin, now=NOW, lock_timeout=dt.timedelta(milliseconds=50))
        assert report.tenants[0].outcome == "failed" and "folders" in (report.tenants[0].error or "")
        assert not report.ok
        holder.rollback()
    with admin.connect() as conn:
        total = sum(counts(conn, A).values())
    report = purge(admin, now=NOW)
    assert report.ok and report.tenants[0].outcome == "purged"
    # The counts span both runs: the first run's deleted batches were counted in their transactions.
    with admin.connect() as conn:
        assert sum(counts(conn, A).values()) == 0
    assert sum(_row(admin, A)["purge_counts"].values()) >= total  # type: ignore[union-attr]


_KILLED_PURGE = """
import sys, uuid, datetime as dt
from sqlalchemy import create_engine
from tenancy.lifecycle import purge
engine = create_engine(sys.argv[1])
def on_batch(iid, table, deleted):
    print(table, deleted, flush=True)
purge(engine, now=dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC), batch_size=2, on_batch=on_batch)
print("done", flush=True)
"""


@pytest.mark.parametrize("kill_after", [1, 7, 20])
def test_a_purge_killed_mid_way_finishes_on_rerun_with_the_same_end_state(
    two_tenants: Engine, lifecycle_db: object, kill_after: int
) -> None:
    admin = two_tenants
    with admin.connect() as conn:
        expected = counts(conn, A)
        before_b = fingerprint(conn, B)
    _remove(admin, A, days_ago=31)
    url = admin.url.render_as_string(hide_password=False)
    with subprocess.Popen(
        [sys.executable, "-c", _KILLED_PURGE, url], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    ) as proc:
        assert proc.stdout is not None
        for _ in range(kill_after):
            line = proc.stdout.readline()
            assert line and line != "done\n"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with admin.connect() as conn:
        left = sum(counts(conn, A).values())
    assert 0 < left < sum(expected.values())
    assert _row(admin, A)["purged_at"] is None  # no tombstone before every table is empty

    report = purge(admin, now=NOW)

    assert report.tenants[0].outcome == "purged"
    with admin.connect() as conn:
        assert set(counts(conn, A).values()) == {0}
        assert fingerprint(conn, B) == before_b
    assert _row(admin, A)["purge_counts"] == expected  # exact across the kill
