"""tenancy.sync against real PostgreSQL and the Wix emulator over real HTTP."""

from __future__ import annotations

import datetime as dt
import random
import threading
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import event, text, update

from tenancy.emulator import Emulator
from tenancy.errors import ConfigurationError, InvalidInstanceId, WixAuthError
from tenancy.tenant_sync.job import Backoff, SyncOptions, SyncReport, sync
from tenancy.tenant_sync.store import Selection
from tenancy.tenants.model import Tenant
from tenancy.wix.client import WixClient
from tests.sync_helpers import TINY, consistent, rows, seed
from tests.wix_helpers import at_once, client_for, sample, sample_reply

pytestmark = pytest.mark.postgres


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(sites=6, seed=3) as emulator:
        yield emulator


class Later:
    """A clock that a test moves forward (to get past backoffs and staleness)."""

    def __init__(self) -> None:
        self.offset = dt.timedelta()

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset


@pytest.mark.parametrize(
    "name", ["get-app-instance-response-full.json", "get-app-instance-response-minimal.json"]
)
def test_rows_are_filled_from_the_samples_fields(db, emu, client, name) -> None:
    """Every Tenant column comes from the matching field of Wix's sample answer, and raw is the body."""
    body = sample(name)
    iid = emu.add_site(instance_id=body["instance"]["instanceId"], body=body)
    report = sync(db.engine, client, SyncOptions(mode="instances", instances=[iid]))
    assert (report.synced, report.changed, report.failed) == (1, 1, 0)
    row = rows(db.engine)[uuid.UUID(iid)]
    inst, site = body["instance"], body["site"]
    billing = inst.get("billing") or {}
    assert row["status"] == "active"
    assert row["site_id"] == site.get("siteId")
    assert row["site_display_name"] == site.get("siteDisplayName")
    assert row["site_url"] == site.get("url")
    assert row["locale"] == site.get("locale")
    assert row["payment_currency"] == site.get("paymentCurrency")
    assert row["app_version"] == inst.get("appVersion")
    assert row["is_free"] == inst.get("isFree")
    assert row["billing_package_name"] == billing.get("packageName")
    assert row["billing_cycle"] == billing.get("billingCycle")
    expires = billing.get("expirationDate")
    assert row["billing_expires_at"] == (
        dt.datetime.fromisoformat(expires.replace("Z", "+00:00")) if expires else None
    )
    assert row["billing_auto_renewing"] == billing.get("autoRenewing")
    assert row["free_trial_status"] == (billing.get("freeTrialInfo") or {}).get("status")
    assert row["permissions"] == inst.get("permissions", [])
    assert row["installed_wix_apps"] == site.get("installedWixApps", [])
    assert row["raw"] == body
    assert row["last_synced_at"] is not None and row["last_sync_error"] is None


def test_changed_data_is_refreshed_and_unchanged_data_is_not_rewritten(db, emu, client) -> None:
    """A second run rewrites only the changed tenant's data; the others only move last_synced_at."""
    seed(db.engine, emu.instance_ids)
    first = sync(db.engine, client, SyncOptions(mode="all"))
    assert first.changed == len(emu.instance_ids)
    before = rows(db.engine)
    target = emu.instance_ids[0]
    emu.update_site(target, site_display_name="Renamed Bakery", installed_wix_apps=["stores", "blog"])
    updates: list[tuple[str, dict]] = []

    def capture(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.startswith("UPDATE tenants"):
            updates.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        second = sync(db.engine, client, SyncOptions(mode="all"))
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    assert (second.changed, second.unchanged, second.failed) == (1, len(emu.instance_ids) - 1, 0)
    after = rows(db.engine)
    changed = after[uuid.UUID(target)]
    assert changed["site_display_name"] == "Renamed Bakery"
    assert changed["installed_wix_apps"] == ["stores", "blog"]
    assert changed["raw"]["site"]["siteDisplayName"] == "Renamed Bakery"
    for iid, row in after.items():
        assert row["last_synced_at"] > before[iid]["last_synced_at"]
        if iid != uuid.UUID(target):
            assert {k: v for k, v in row.items() if "_at" not in k} == {
                k: v for k, v in before[iid].items() if "_at" not in k
            }
    data_writes = [s for s, _ in updates if "raw=" in s or "site_display_name=" in s]
    assert len(updates) == len(emu.instance_ids) and len(data_writes) == 1


def test_refused_n_runs_in_a_row_marks_removed_and_a_success_reactivates(db, emu, client) -> None:
    """An uninstalled app is marked removed (data kept) after N refusing runs; a reinstall reactivates it."""
    seed(db.engine, emu.instance_ids)
    sync(db.engine, client, SyncOptions(mode="all"))
    gone = emu.instance_ids[1]
    kept = rows(db.engine)[uuid.UUID(gone)]
    emu.remove_app(gone)
    outcomes = []
    for _ in range(3):
        report = sync(
            db.engine, client, SyncOptions(mode="instances", instances=[gone], remove_after=3, backoff=TINY)
        )
        row = rows(db.engine)[uuid.UUID(gone)]
        outcomes.append((report.failed, report.removed, row["status"], row["consecutive_refusals"]))
    assert outcomes == [(1, 0, "active", 1), (1, 0, "active", 2), (0, 1, "removed", 3)]
    assert row["raw"] == kept["raw"] and row["site_display_name"] == kept["site_display_name"]
    assert "HTTP 400" in row["last_sync_error"] and emu.app_secret not in row["last_sync_error"]
    assert row["next_attempt_at"] > dt.datetime.now(dt.UTC) + dt.timedelta(days=6)
    # Due-mode runs leave it alone until the recheck; a reinstall is seen at the next check.
    assert sync(db.engine, client, SyncOptions(stale_after=dt.timedelta(0))).removed == 0
    emu.reinstall_app(gone)
    emu.update_site(gone, app_version="9.9.9")
    later = Later()
    later.offset = dt.timedelta(days=8)
    report = sync(db.engine, client, SyncOptions(stale_after=dt.timedelta(days=1), clock=later))
    row = rows(db.engine)[uuid.UUID(gone)]
    assert report.failed == 0 and report.changed >= 1
    assert (row["status"], row["consecutive_refusals"], row["app_version"]) == ("active", 0, "9.9.9")
    assert row["last_sync_error"] is None


def test_a_failure_between_refusals_does_not_reset_the_count(db, emu, client) -> None:
    """Only a success resets the consecutive refusal count; a 5xx in between keeps it."""
    iid = emu.instance_ids[2]
    seed(db.engine, [iid])
    emu.remove_app(iid)
    sync(db.engine, client, SyncOptions(mode="all", backoff=TINY))
    emu.set_faults(rate=1.0, kinds=("500",), instance_id=iid)
    sync(db.engine, client, SyncOptions(mode="all", backoff=TINY))
    emu.clear_faults()
    row = rows(db.engine)[uuid.UUID(iid)]
    assert (row["consecutive_refusals"], row["consecutive_failures"], row["status"]) == (1, 2, "active")


def test_twenty_percent_faults_lose_nothing(db) -> None:
    """With 20% of requests failing (429, 5xx, timeouts, drops), every tenant is synced by the second run."""
    # Timeout faults stall 1.5 s against a 1 s client timeout: real timeouts, with room to
    # spare for normal answers on a loaded machine.
    with Emulator(sites=40, seed=11, timeout_delay=1.5) as emu, client_for(emu, timeout=1.0) as client:
        seed(db.engine, emu.instance_ids)
        emu.set_faults(rate=0.2, kinds=("429", "500", "503", "timeout", "drop"), seed=5)
        later = Later()
        first = sync(
            db.engine, client, SyncOptions(concurrency=8, backoff=TINY, clock=later, rng=random.Random(1))
        )
        assert first.processed == 40
        later.offset = dt.timedelta(seconds=1)  # past the (tiny) backoff, still fresh for stale_after
        second = sync(db.engine, client, SyncOptions(concurrency=8, backoff=TINY, clock=later))
        emu.clear_faults()
        assert second.processed == first.failed  # only the failed ones were due again
        assert first.synced + second.synced == 40 and second.failed == 0
        assert emu.count("fault") > 0
        for row in rows(db.engine).values():
            assert row["status"] == "active" and row["last_sync_error"] is None
            assert consistent(row) and row["raw"] is not None


def test_a_permanently_failing_tenant_is_recorded_and_the_others_sync(db, emu, client) -> None:
    """One tenant whose Get App Instance always fails: listed in the report, error and backoff on its row."""
    seed(db.engine, emu.instance_ids)
    bad = emu.instance_ids[3]
    emu.set_faults(rate=1.0, kinds=("500",), instance_id=bad, endpoints=["get_app_instance"])
    report = sync(db.engine, client, SyncOptions(backoff=Backoff()))
    assert (report.synced, report.failed) == (len(emu.instance_ids) - 1, 1)
    assert report.failures[0].instance_id == uuid.UUID(bad)
    assert "HTTP 500" in report.failures[0].reason and "request id" in report.failures[0].reason
    row = rows(db.engine)[uuid.UUID(bad)]
    assert row["consecutive_failures"] == 1 and "HTTP 500" in row["last_sync_error"]
    assert row["next_attempt_at"] > row["last_attempt_at"] and row["raw"] is None
    # In backoff: the next due run does not try it again.
    assert sync(db.engine, client).processed == 0


def test_concurrent_all_runs_fetch_each_tenant_once(db) -> None:
    """Three --all runs at once (same start) split the tenants: each instance fetched exactly once."""
    with Emulator(sites=36, seed=4, latency=0.005) as emu, client_for(emu) as client:
        seed(db.engine, emu.instance_ids)
        sync(db.engine, client, SyncOptions(mode="all", concurrency=6))
        emu.reset_counts()
        since = dt.datetime.now(dt.UTC)
        outcomes = at_once(
            3, lambda: sync(db.engine, client, SyncOptions(mode="all", since=since, concurrency=3))
        )
        reports = [o for o in outcomes if isinstance(o, SyncReport)]
        assert len(reports) == 3, outcomes
        assert sum(r.synced for r in reports) == 36
        assert all(emu.count("get_app_instance", iid) == 1 for iid in emu.instance_ids)


def test_due_selects_never_synced_and_stale_tenants_oldest_first(db, emu, client) -> None:
    """Due mode picks never-synced tenants first, then the stalest; fresh ones are left alone."""
    seed(db.engine, emu.instance_ids)
    now = dt.datetime.now(dt.UTC)
    ids = [uuid.UUID(i) for i in emu.instance_ids]
    with db.engine.begin() as conn:
        conn.execute(update(Tenant).where(Tenant.instance_id == ids[0]).values(last_synced_at=now))
        conn.execute(
            update(Tenant)
            .where(Tenant.instance_id == ids[1])
            .values(last_synced_at=now - dt.timedelta(days=3))
        )
        conn.execute(
            update(Tenant)
            .where(Tenant.instance_id == ids[2])
            .values(last_synced_at=now - dt.timedelta(days=2))
        )
    emu.reset_counts()
    order: list[uuid.UUID] = []
    sync(db.engine, client, SyncOptions(concurrency=1), on_progress=lambda r: None)
    order = [uuid.UUID(r.instance_id) for r in emu.requests if r.endpoint == "get_app_instance"]
    assert ids[0] not in order
    assert set(order[:3]) == set(ids[3:]) and order[3:] == [ids[1], ids[2]]


def test_instances_registers_new_ids_and_rejects_invalid_ones(db, emu, client) -> None:
    """--instance registers unknown ids and syncs them; an invalid id raises before anything is written."""
    with pytest.raises(InvalidInstanceId):
        sync(db.engine, client, SyncOptions(mode="instances", instances=[emu.instance_ids[0], "not-a-uuid"]))
    assert rows(db.engine) == {}
    with pytest.raises(ConfigurationError):
        sync(db.engine, client, SyncOptions(mode="instances", instances=[]))
    with pytest.raises(ConfigurationError):
        sync(db.engine, client, SyncOptions(mode="all", instances=emu.instance_ids[:1]))
    report = sync(db.engine, client, SyncOptions(mode="instances", instances=emu.instance_ids[:2]))
    assert report.synced == 2 and set(rows(db.engine)) == {uuid.UUID(i) for i in emu.instance_ids[:2]}


def test_wrong_app_credentials_stop_the_run_without_charging_tenants(db, emu) -> None:
    """Wix refusing the app's credentials raises WixAuthError and records nothing on any row."""
    seed(db.engine, emu.instance_ids)
    with client_for(emu) as good, WixClient(emu.app_id, "wrong-secret", base_url=emu.base_url) as bad:
        with pytest.raises(WixAuthError) as caught:
            sync(db.engine, bad, SyncOptions(concurrency=3))
        assert "wrong-secret" not in str(caught.value)
        assert all(
            r["last_attempt_at"] is None and r["last_sync_error"] is None for r in rows(db.engine).values()
        )
        assert sync(db.engine, good).synced == len(emu.instance_ids)


def test_stop_finishes_the_tenants_in_flight(db) -> None:
    """Setting stop ends the run after the tenants in flight; the rest stay due for the next run."""
    with Emulator(sites=30, seed=8, latency=0.02) as emu, client_for(emu) as client:
        seed(db.engine, emu.instance_ids)
        stop = threading.Event()

        def progress(report) -> None:
            if report.processed >= 5:
                stop.set()

        report = sync(db.engine, client, SyncOptions(concurrency=2), stop=stop, on_progress=progress)
        assert report.interrupted and 5 <= report.processed <= 7
        assert all(consistent(r) for r in rows(db.engine).values())
        rest = sync(db.engine, client, SyncOptions(concurrency=4))
        assert report.synced + rest.synced == 30


def test_a_database_refusing_a_value_fails_only_that_tenant(db, emu, client) -> None:
    """An answer a column cannot hold (an overlong locale) fails that tenant, recorded on its row."""
    seed(db.engine, emu.instance_ids)
    odd = emu.instance_ids[4]
    emu.update_site(odd, locale="x" * 100)
    report = sync(db.engine, client)
    assert (report.failed, report.synced) == (1, len(emu.instance_ids) - 1)
    row = rows(db.engine)[uuid.UUID(odd)]
    assert "database refused" in row["last_sync_error"] and row["raw"] is None


@pytest.mark.parametrize("mode", ["due", "all"])
def test_every_claim_query_has_an_index(db, mode) -> None:
    """Each claim phase can be answered by an index scan (no sort, no full scan per claim)."""
    now = dt.datetime.now(dt.UTC)
    selection = Selection(mode=mode, since=now, now=now, stale_before=now - dt.timedelta(days=1))
    with db.engine.connect() as conn:
        # On a tiny table any plan is cheap; forbid the others to see whether an index serves.
        for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
            conn.execute(text(f"SET LOCAL {setting} = off"))
        for query in selection.phases():
            stmt = query.limit(1).with_for_update(skip_locked=True)
            sql = str(stmt.compile(db.engine, compile_kwargs={"literal_binds": True}))
            plan = "\n".join(conn.execute(text(f"EXPLAIN {sql}")).scalars())
            assert "Index Scan using ix_tenants_" in plan and "Sort" not in plan, plan


def test_the_sync_order_index_is_partial(db) -> None:
    """The migrated claim index leaves out tenants in backoff (alembic check does not compare predicates)."""
    with db.engine.connect() as conn:
        definition = conn.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_tenants_sync_order'")
        ).scalar_one()
    assert definition.endswith("(last_synced_at) WHERE (next_attempt_at IS NULL)")


def test_a_refused_tenant_already_marked_removed_stays_removed_without_failing(db, emu, client) -> None:
    """A tenant already marked removed (e.g. by a webhook) that Wix refuses counts as removed, not failed."""
    iid = emu.instance_ids[5]
    seed(db.engine, [iid])
    with db.engine.begin() as conn:
        conn.execute(update(Tenant).where(Tenant.instance_id == uuid.UUID(iid)).values(status="removed"))
    emu.remove_app(iid)
    report = sync(db.engine, client, SyncOptions(mode="all"))
    row = rows(db.engine)[uuid.UUID(iid)]
    assert (report.removed, report.failed, row["status"]) == (1, 0, "removed")
    assert row["next_attempt_at"] > dt.datetime.now(dt.UTC) + dt.timedelta(days=6)


@pytest.mark.parametrize(
    ("endpoint", "name"),
    [
        ("access_token", "error-access-token-app-not-installed.json"),
        ("get_app_instance", "error-get-app-instance-404-not-found.json"),
    ],
)
def test_wix_sample_refusals_count_towards_removal(db, emu, client, endpoint, name) -> None:
    """Wix's sample answers for a removed app (token 400, instance 404) count as refusals."""
    iid = emu.instance_ids[0]
    seed(db.engine, [iid])
    emu.respond_with(endpoint, **sample_reply(name), instance_id=iid)
    first = sync(db.engine, client, SyncOptions(mode="all", remove_after=2, backoff=TINY))
    row = rows(db.engine)[uuid.UUID(iid)]
    assert (first.failed, row["consecutive_refusals"], row["status"]) == (1, 1, "active")
    assert "1700000000.000000000000000000" in row["last_sync_error"]  # Wix's request id, kept
    second = sync(db.engine, client, SyncOptions(mode="all", remove_after=2, backoff=TINY))
    assert (second.removed, rows(db.engine)[uuid.UUID(iid)]["status"]) == (1, "removed")


def test_dates_in_the_future_are_never_trusted(db, emu, client) -> None:
    """A last_synced_at or last_attempt_at ahead of now counts as due, so the sync repairs the row."""
    seed(db.engine, emu.instance_ids)
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=3650)
    ids = [uuid.UUID(i) for i in emu.instance_ids]
    with db.engine.begin() as conn:
        conn.execute(update(Tenant).values(last_synced_at=dt.datetime.now(dt.UTC)))
        conn.execute(update(Tenant).where(Tenant.instance_id == ids[0]).values(last_synced_at=future))
        stale = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
        conn.execute(
            update(Tenant)
            .where(Tenant.instance_id == ids[1])
            .values(last_synced_at=stale, last_attempt_at=future)
        )
    emu.reset_counts()
    sync(db.engine, client, SyncOptions(concurrency=1), on_progress=lambda r: None)
    fetched = {uuid.UUID(r.instance_id) for r in emu.requests if r.endpoint == "get_app_instance"}
    assert fetched == {ids[0], ids[1]}
