"""Claims by key: due tenants listed without a lock, each locked by ``instance_id``."""

from __future__ import annotations

import datetime as dt
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from tenancy.emulator import Emulator
from tenancy.tenant_sync.claims import ClaimQueue
from tenancy.tenant_sync.job import SyncOptions, sync
from tenancy.tenant_sync.store import Selection, claim_by_key
from tenancy.tenant_sync.worker_db import PsycopgDb, SqlAlchemyDb, WorkerDb, worker_db
from tenancy.tenants.model import Tenant
from tests.sync_helpers import SyncDb, migrated_database, seed
from tests.wire import RoundTripProxy
from tests.wix_helpers import client_for

pytestmark = pytest.mark.postgres


@pytest.fixture
def db(pg_server: str) -> Iterator[SyncDb]:
    with migrated_database(pool_size=4) as database:
        yield database


def _selection() -> Selection:
    now = dt.datetime.now(dt.UTC)
    return Selection(mode="all", since=now, now=now)


@pytest.mark.parametrize(("dialect", "locks"), [(postgresql.dialect(), True), (sqlite.dialect(), False)])
def test_the_listing_takes_no_lock_and_the_claim_locks_one_key(dialect, locks) -> None:
    """Citus refuses FOR UPDATE on a multi-shard listing; the claim by key goes to one shard."""
    selection = _selection()
    for query in selection.phases():
        assert "FOR UPDATE" not in str(query.compile(dialect=dialect))
    stmt, _ = selection.by_key()
    sql = str(stmt.compile(dialect=dialect))
    assert "tenants.instance_id = " in sql
    assert ("FOR UPDATE SKIP LOCKED" in sql) is locks


@contextmanager
def _worker_db(engine: Engine, direct: bool) -> Iterator[WorkerDb]:
    """A worker's connection in either form (worker_db picks the direct one on psycopg)."""
    if direct:
        with worker_db(engine) as db:
            assert isinstance(db, PsycopgDb)
            yield db
    else:
        with engine.connect() as conn:
            yield SqlAlchemyDb(conn)


@pytest.mark.parametrize("direct", [True, False], ids=["psycopg", "sqlalchemy"])
def test_a_tenant_held_by_another_process_is_skipped_not_waited_for(db: SyncDb, direct: bool) -> None:
    ids = sorted(uuid.uuid4() for _ in range(3))
    seed(db.engine, ids)
    selection = _selection()
    queue = ClaimQueue(lambda: selection, batch=2)
    with db.engine.connect() as other, other.begin():
        held = claim_by_key(other, selection, ids[0])
        assert held is not None
        with _worker_db(db.engine, direct) as worker:
            claimed = [queue.claim(worker) for _ in range(3)]
            worker.rollback()
    assert {row["instance_id"] for row in claimed if row is not None} == set(ids[1:])
    assert claimed[-1] is None  # the held one was skipped, not waited for, and not retried


class _Counting(WorkerDb):
    """A worker's connection that counts its claims, and those that came back empty."""

    def __init__(self, db: WorkerDb) -> None:
        self.db = db
        self.claims = self.empty = 0

    def list_candidates(self, selection: Selection, phase: int, *, limit: int) -> list[uuid.UUID]:
        return self.db.list_candidates(selection, phase, limit=limit)

    def claim(self, selection: Selection, instance_id: uuid.UUID) -> dict[str, Any] | None:
        row = self.db.claim(selection, instance_id)
        self.claims += 1
        self.empty += row is None
        return row


def test_the_processes_of_a_run_claim_their_own_share_first(db: SyncDb) -> None:
    """Two processes listing the same tenants claim different ones: no claim comes back empty
    (each would otherwise try every tenant, and find half of them taken)."""
    ids = [uuid.uuid5(uuid.NAMESPACE_OID, str(n)) for n in range(40)]  # fixed: a fixed split
    seed(db.engine, ids)
    selection = _selection()
    queues = [ClaimQueue(lambda: selection, batch=4, share=(n, 2)) for n in range(2)]
    with worker_db(db.engine) as first, worker_db(db.engine) as second:
        workers = [_Counting(first), _Counting(second)]
        claimed: list[set[uuid.UUID]] = [set(), set()]
        for _ in range(12):  # in turn, each transaction holding what it claimed (in flight)
            for n in range(2):
                row = queues[n].claim(workers[n])
                assert row is not None
                claimed[n].add(row["instance_id"])
        assert [w.empty for w in workers] == [0, 0] and [w.claims for w in workers] == [12, 12]
        assert not claimed[0] & claimed[1]
        first.rollback()
        second.rollback()


def test_a_process_alone_takes_the_other_shares_too(db: SyncDb) -> None:
    """Process 1 of 2 with the other gone (or done): every tenant is claimed, its own share first."""
    ids = [uuid.uuid5(uuid.NAMESPACE_OID, str(n)) for n in range(20)]
    seed(db.engine, ids)
    selection = _selection()
    queue = ClaimQueue(lambda: selection, batch=4, share=(1, 2))
    with worker_db(db.engine) as worker:
        order = []
        while (row := queue.claim(worker)) is not None:
            order.append(row["instance_id"])
        worker.rollback()
    assert sorted(order) == sorted(ids)
    own = [zlib.crc32(i.bytes) % 2 == 1 for i in order]
    assert own == sorted(own, reverse=True)  # its share, then the others'


def test_a_tenant_done_meanwhile_is_not_claimed_again(db: SyncDb) -> None:
    iid = uuid.uuid4()
    seed(db.engine, [iid])
    selection = _selection()
    with db.engine.begin() as conn:  # another process synced it after this run started
        conn.execute(update(Tenant).values(last_attempt_at=selection.since + dt.timedelta(seconds=1)))
    with db.engine.connect() as conn, conn.begin():
        assert claim_by_key(conn, selection, iid) is None


@pytest.mark.parametrize("direct", [True, False], ids=["psycopg", "sqlalchemy"])
def test_a_synced_tenant_costs_four_round_trips(db: SyncDb, direct: bool) -> None:
    """BEGIN, claim, write, COMMIT (was six: a claim query, and a savepoint around the write),
    on psycopg directly and through SQLAlchemy (taken here because a listener watches the engine)."""
    count = 80
    with Emulator(sites=count, seed=12) as emu, client_for(emu) as client:
        seed(db.engine, emu.instance_ids)
        url = make_url(db.url)
        with RoundTripProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
            engine = create_engine(url.set(host="127.0.0.1", port=proxy.port), pool_size=2)
            statements: list[str] = []
            if not direct:
                event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
            try:
                with engine.connect():
                    pass  # connection setup is not the sync's
                proxy.reset()
                report = sync(engine, client, SyncOptions(mode="all", concurrency=1))
            finally:
                engine.dispose()
        assert report.synced == count
        assert bool(statements) is not direct  # the listener saw the sync's SQL only without psycopg
        # Plus one listing per batch and the last, empty claim: well under 5 per tenant.
        assert 4 * count <= proxy.round_trips <= 4 * count + 16, proxy.round_trips
