"""The sync's two ways to its database: psycopg directly, and SQLAlchemy's Connection.

Both must leave the same rows (value for value, JSON ``null`` where SQLAlchemy writes JSON
``null``), count the same outcomes and record the same failures; the psycopg one is taken
only where nothing watches the engine's SQL.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import random
import re
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, delete, event, text
from sqlalchemy.exc import DataError, OperationalError

from tenancy.emulator import Emulator
from tenancy.tenant_sync.job import SyncOptions, sync
from tenancy.tenant_sync.store import Selection
from tenancy.tenant_sync.worker_db import PsycopgDb, SqlAlchemyDb, worker_db
from tenancy.tenants.model import Tenant
from tests.sync_helpers import SyncDb, seed
from tests.wix_helpers import client_for, sample

pytestmark = pytest.mark.postgres

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
JSON_COLUMNS = ("permissions", "installed_wix_apps", "raw")


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(sites=4, seed=21) as emulator:
        full = sample("get-app-instance-response-full.json")
        minimal = sample("get-app-instance-response-minimal.json")
        # No site at all: NULL columns.
        bare = copy.deepcopy(minimal)
        bare["instance"].pop("permissions", None)
        bare.pop("site", None)
        for n, body in enumerate((full, minimal, bare), start=5):
            body = copy.deepcopy(body)
            body["instance"]["instanceId"] = str(uuid.UUID(int=n))
            emulator.add_site(instance_id=body["instance"]["instanceId"], body=body)
        yield emulator


def _watched(engine: Engine) -> Engine:
    """*engine* with a listener on its SQL, which keeps the sync on SQLAlchemy's path."""
    event.listen(engine, "before_cursor_execute", lambda *args: None)
    return engine


def _snapshot(engine: Engine) -> dict[uuid.UUID, dict[str, Any]]:
    """Every row, with each JSON column's JSON type (SQL NULL and JSON null are told apart); not
    the registration time, nor Wix's request ids (the emulator numbers its requests)."""
    kinds = ", ".join(f"jsonb_typeof({name}) AS {name}_kind" for name in JSON_COLUMNS)
    with engine.connect() as conn:
        result = conn.execute(text(f"SELECT *, {kinds} FROM tenants"))
        rows = {row.instance_id: dict(row._mapping) for row in result}
    for row in rows.values():
        del row["first_seen_at"]
        if row["last_sync_error"]:
            row["last_sync_error"] = re.sub(r"\[request id [^]]*\]", "", row["last_sync_error"])
    return rows


def _run(engine: Engine, emu: Emulator, now: dt.datetime) -> tuple[int, int, int, int]:
    with client_for(emu) as client:
        # One worker: the failures draw their backoff jitter from the seeded rng in a fixed order.
        options = SyncOptions(mode="all", concurrency=1, clock=lambda: now, rng=random.Random(4))
        report = sync(engine, client, options)
    return report.changed, report.unchanged, report.removed, report.failed


def test_both_paths_write_the_same_rows_and_outcomes(db: SyncDb, emu: Emulator) -> None:
    emu.update_site(emu.instance_ids[1], locale="x" * 100)  # refused by the column: a failure
    emu.remove_app(emu.instance_ids[2])  # refused by the token endpoint
    watched = _watched(create_engine(db.url))
    snapshots = []
    outcomes = []
    try:
        for engine in (db.engine, watched):
            with engine.begin() as conn:
                conn.execute(delete(Tenant))
            seed(engine, emu.instance_ids)
            # A first run, then a second one over the same rows (at a fixed time each: same values).
            first = _run(engine, emu, NOW)
            second = _run(engine, emu, NOW + dt.timedelta(hours=1))
            outcomes.append((first, second))
            snapshots.append(_snapshot(engine))
    finally:
        watched.dispose()
    assert outcomes[0] == outcomes[1]
    assert outcomes[0] == ((len(emu.instance_ids) - 2, 0, 0, 2), (0, len(emu.instance_ids) - 2, 0, 2))
    assert snapshots[0] == snapshots[1]
    rows = snapshots[0]
    assert rows[uuid.UUID(int=7)]["site_id"] is None
    assert (
        "database refused the answer (StringDataRightTruncation)"
        in rows[uuid.UUID(emu.instance_ids[1])]["last_sync_error"]
    )


def test_the_psycopg_path_only_where_nothing_watches_the_engine(db: SyncDb, caplog) -> None:
    def kind(engine: Engine) -> type:
        with worker_db(engine) as worker:
            return type(worker)

    assert kind(db.engine) is PsycopgDb
    for watch in ("before_cursor_execute", "after_execute", "commit"):
        engine = create_engine(db.url)
        event.listen(engine, watch, lambda *args: None)
        assert kind(engine) is SqlAlchemyDb, watch
        engine.dispose()
    engine = create_engine(db.url)
    event.listen(engine, "handle_error", lambda context: None)
    assert kind(engine) is SqlAlchemyDb
    engine.dispose()
    engine = create_engine(db.url, echo=True)
    assert kind(engine) is SqlAlchemyDb
    engine.dispose()
    with caplog.at_level(logging.INFO, logger="sqlalchemy.engine"):
        assert kind(db.engine) is SqlAlchemyDb
    assert kind(create_engine("sqlite://")) is SqlAlchemyDb


def test_a_refused_update_is_rolled_back_and_the_connection_stays_usable(db: SyncDb) -> None:
    iid = uuid.uuid4()
    seed(db.engine, [iid])
    now = dt.datetime.now(dt.UTC)
    selection = Selection(mode="all", since=now, now=now)
    with worker_db(db.engine) as worker:
        assert isinstance(worker, PsycopgDb)
        row = worker.claim(selection, iid)
        assert row is not None and row["instance_id"] == iid
        with pytest.raises(DataError) as refused:
            worker.update(iid, {"locale": "x" * 100, "last_attempt_at": now})
        assert "StringDataRightTruncation" in type(refused.value.orig).__name__
        # Rolled back: the row is claimable again on this very connection, and writable.
        row = worker.claim(selection, iid)
        assert row is not None
        worker.update(iid, {"locale": "en", "last_attempt_at": now})
        worker.commit()
    with db.engine.connect() as conn:
        locale = conn.execute(text("SELECT locale FROM tenants WHERE instance_id = :i"), {"i": iid}).scalar()
    assert locale == "en"


def test_both_paths_write_none_into_a_json_column_alike(db: SyncDb) -> None:
    """SQLAlchemy writes Python None into a JSON column as JSON null; so does the psycopg path."""
    ids = [uuid.uuid4(), uuid.uuid4()]
    seed(db.engine, ids)
    now = dt.datetime.now(dt.UTC)
    selection = Selection(mode="all", since=now, now=now)
    watched = _watched(create_engine(db.url))
    try:
        for engine, iid, expected in ((db.engine, ids[0], PsycopgDb), (watched, ids[1], SqlAlchemyDb)):
            with worker_db(engine) as worker:
                assert isinstance(worker, expected)
                assert worker.claim(selection, iid) is not None
                worker.update(
                    iid, {"installed_wix_apps": None, "raw": {"a": [1, None]}, "last_attempt_at": now}
                )
                worker.commit()
    finally:
        watched.dispose()
    rows = _snapshot(db.engine)
    first, second = rows[ids[0]], rows[ids[1]]
    assert (first["installed_wix_apps_kind"], first["raw"]) == (
        second["installed_wix_apps_kind"],
        second["raw"],
    )
    assert first["installed_wix_apps_kind"] == "null"


@pytest.mark.parametrize("direct", [True, False], ids=["psycopg", "sqlalchemy"])
def test_a_worker_whose_connection_dies_stops_the_run_and_nothing_is_lost(
    db: SyncDb, emu: Emulator, direct: bool
) -> None:
    """The server ends the sync's sessions mid-run: sync() raises SQLAlchemy's OperationalError
    on both paths, no row is left half-written, and the next run syncs every tenant. (A worker
    that was writing a fetched answer records it as refused, on a new connection, on both.)"""
    seed(db.engine, emu.instance_ids)
    engine = create_engine(db.url, connect_args={"application_name": "tenancy-sync-under-test"})
    if not direct:
        _watched(engine)
    killed = threading.Event()

    def kill_sessions(report: object) -> None:
        if not killed.is_set():
            killed.set()
            with db.engine.connect() as conn:
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE application_name = 'tenancy-sync-under-test'"
                    )
                )

    try:
        with client_for(emu) as client, pytest.raises(OperationalError):
            sync(engine, client, SyncOptions(mode="all", concurrency=2), on_progress=kill_sessions)
    finally:
        engine.dispose()
    after = _snapshot(db.engine).values()
    # Each row untouched, synced, or (written as the session died) charged with the refusal.
    assert all(
        row["last_attempt_at"] is None or row["last_synced_at"] or row["last_sync_error"] for row in after
    )
    assert all(row["last_sync_error"] is None or "AdminShutdown" in row["last_sync_error"] for row in after)
    assert any(row["last_attempt_at"] is None for row in after)  # the run did stop early
    with client_for(emu) as client:
        rest = sync(db.engine, client, SyncOptions(mode="all", since=dt.datetime.now(dt.UTC)))
    rows = _snapshot(db.engine)
    assert rest.failed == 0 and all(row["last_synced_at"] is not None for row in rows.values())
