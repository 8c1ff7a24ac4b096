"""Context, connections and concurrency (ISOLATION.md scenarios 43-52), on PostgreSQL.

The tenant setting is transaction-local: it must be there in every transaction of a tenant
session and nowhere else, whatever the pool does with the connection afterwards.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
from sqlalchemy import Engine, create_engine, event, insert, select, text
from sqlalchemy.exc import DBAPIError

from tenancy import ConfigurationError, CrossTenantAccess, TenantSession, TenantSessionFactory
from tests.isolation.models import Folder, Note
from tests.isolation.support import COUNTS, A, B, Env

SETTING = text("SELECT current_setting('tenancy.instance_id', true)")
STATE = text(
    "SELECT pg_backend_pid(), current_setting('tenancy.instance_id', true),"
    " current_user, current_setting('search_path')"
)


@contextmanager
def single_connection_engine(pg: Env, **kw) -> Iterator[Engine]:
    """A runtime-role engine whose pool holds exactly one connection (every checkout reuses it)."""
    engine = create_engine(pg.extra["database"].runtime_url, pool_size=1, max_overflow=0, **kw)
    try:
        yield engine
    finally:
        engine.dispose()


def own_notes(session) -> set[uuid.UUID]:
    """The tenants of every note the session can see (ORM and raw SQL)."""
    orm = {n.instance_id for n in session.scalars(select(Note)).unique()}
    raw = {r[0] for r in session.execute(text("SELECT instance_id FROM iso_notes"))}
    return orm | raw


def test_s43_pooled_connection_keeps_nothing_even_after_an_exception(pg: Env) -> None:
    """Scenario 43: the next checkout of the same connection has no tenant setting, the same user and
    search_path.
    """
    with single_connection_engine(pg) as engine:
        with engine.connect() as conn:
            pid, setting, user, path = conn.execute(STATE).one()
        assert setting in (None, "")
        factory = TenantSessionFactory(engine, binding_key=pg.key)
        with pytest.raises(ZeroDivisionError), factory.for_instance(A) as session:
            assert session.execute(STATE).one()[1] == str(A)
            raise ZeroDivisionError  # an application error inside the block
        with pytest.raises(DBAPIError), factory.for_instance(B) as session:
            session.execute(text("SELECT 1/0"))  # a database error inside the block
        with factory.for_instance(B) as session:
            assert session.execute(SETTING).scalar_one() == str(B)
            session.commit()  # a committed session, too
        with engine.connect() as conn:
            after = conn.execute(STATE).one()
            assert conn.execute(text("SELECT count(*) FROM iso_notes")).scalar_one() == 0
    assert after[0] == pid  # really the same server connection
    assert after[1] in (None, "")
    assert (after[2], after[3]) == (user, path) == (pg.runtime_role, path)


def test_s44_setting_is_present_in_every_transaction_of_a_session(pg: Env) -> None:
    """Scenario 44: after commit(), after rollback(), after a failed statement and in savepoints the tenant
    is set.
    """
    with pg.factory.for_instance(A) as session:
        assert session.execute(SETTING).scalar_one() == str(A)
        session.commit()
        assert session.execute(SETTING).scalar_one() == str(A)
        assert own_notes(session) == {A}
        session.rollback()
        assert session.execute(SETTING).scalar_one() == str(A)
        with pytest.raises(DBAPIError):
            session.execute(text("SELECT 1/0"))
        session.rollback()
        assert session.execute(SETTING).scalar_one() == str(A)
        assert own_notes(session) == {A}
        with session.begin_nested():
            assert session.execute(SETTING).scalar_one() == str(A)
            assert own_notes(session) == {A}
        savepoint = session.begin_nested()
        with pytest.raises(DBAPIError):
            session.execute(text("SELECT 1/0"))
        savepoint.rollback()
        assert session.execute(SETTING).scalar_one() == str(A)
        assert own_notes(session) == {A}
        session.commit()
        with session.begin():
            assert own_notes(session) == {A}


def test_s45_autocommit_connections_are_refused(pg: Env) -> None:
    """Scenario 45: an AUTOCOMMIT engine or connection raises ConfigurationError instead of running
    unscoped.
    """
    with single_connection_engine(pg, isolation_level="AUTOCOMMIT") as engine:
        factory = TenantSessionFactory(engine, binding_key=pg.key)
        with factory.for_instance(A) as session, pytest.raises(ConfigurationError):
            session.execute(select(Note))
    with pg.factory.for_instance(A) as session, pytest.raises(ConfigurationError):
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    with single_connection_engine(pg) as engine:
        # Autocommit switched on behind SQLAlchemy's back, on the driver connection itself.
        event.listen(engine, "connect", lambda dbapi_conn, record: setattr(dbapi_conn, "autocommit", True))
        with (
            TenantSessionFactory(engine, binding_key=pg.key).for_instance(A) as session,
            pytest.raises(ConfigurationError),
        ):
            session.execute(text("SELECT count(*) FROM iso_notes"))


def test_s46_two_tenants_through_one_backend_connection_in_turn(pg: Env) -> None:
    """Scenario 46 (PgBouncer transaction mode, equivalent): A and B interleave transactions on one backend,
    each sees its own.
    """
    with single_connection_engine(pg) as engine:
        factory = TenantSessionFactory(engine, binding_key=pg.key)
        session_a, session_b = factory.for_instance(A), factory.for_instance(B)
        pids = set()
        try:
            for _ in range(3):
                for session, tenant in ((session_a, A), (session_b, B), (session_a, A)):
                    pids.add(session.execute(text("SELECT pg_backend_pid()")).scalar_one())
                    assert own_notes(session) == {tenant}
                    assert len(session.scalars(select(Note)).unique().all()) == COUNTS[tenant]["notes"]
                    session.commit()  # the transaction ends: the backend goes to the next client
        finally:
            session_a.close()
            session_b.close()
        assert len(pids) == 1


@pytest.fixture
def eight_tenants(pg: Env) -> list[uuid.UUID]:
    """A, B and six more tenants; tenant number k (from 3) holds k notes, so counts tell them apart."""
    extra = [uuid.UUID(int=k) for k in range(3, 9)]
    with pg.owner.begin() as conn:
        for k, tenant in enumerate(extra, start=3):
            conn.execute(
                insert(Folder.__table__).values(instance_id=tenant, id=1, slug="inbox", name="Inbox")
            )
            conn.execute(
                insert(Note.__table__),
                [
                    {"instance_id": tenant, "id": i, "folder_id": 1, "title": "Hello", "body": ""}
                    for i in range(k)
                ],
            )
    return [A, B, *extra]


def expected_notes(tenant: uuid.UUID) -> int:
    """How many notes *tenant* of ``eight_tenants`` holds."""
    return COUNTS[tenant]["notes"] if tenant in COUNTS else tenant.int


def test_s47_threads_with_different_tenants_on_a_pool_of_two(pg: Env, eight_tenants: list[uuid.UUID]) -> None:
    """Scenario 47: eight threads, each with its own tenant, on a pool of two connections only ever see
    their own rows.
    """
    assert pg.engine.pool.size() == 2
    rounds = 10
    start = threading.Barrier(len(eight_tenants))
    bad: list[tuple[uuid.UUID, set, int]] = []

    def work(tenant: uuid.UUID) -> int:
        start.wait()
        for _ in range(rounds):
            with pg.factory.for_instance(tenant) as session:
                seen = own_notes(session)
                count = len(session.scalars(select(Note)).unique().all())
                session.commit()
                setting = session.execute(SETTING).scalar_one()  # maybe the other pooled connection
                if seen != {tenant} or count != expected_notes(tenant) or setting != str(tenant):
                    bad.append((tenant, seen, count))
        return rounds

    with ThreadPoolExecutor(len(eight_tenants)) as pool:
        done = list(pool.map(work, eight_tenants))
    assert done == [rounds] * len(eight_tenants)
    assert bad == []


def test_s47_asyncio_tasks_with_different_tenants_on_a_pool_of_two(
    pg: Env, eight_tenants: list[uuid.UUID]
) -> None:
    """Scenario 47: eight asyncio tasks, each with its own tenant, interleaving sync sessions at every
    await, only ever see their own rows.
    """
    rounds = 5
    bad: list[tuple[uuid.UUID, set, int]] = []
    order: list[uuid.UUID] = []

    async def work(tenant: uuid.UUID) -> None:
        # AsyncSession support is not built yet: sync sessions inside tasks, and every
        # transaction ends before an await so two pooled connections serve all tasks.
        with pg.factory.for_instance(tenant) as session:
            for _ in range(rounds):
                seen = own_notes(session)
                count = len(session.scalars(select(Note)).unique().all())
                session.commit()
                order.append(tenant)
                if seen != {tenant} or count != expected_notes(tenant):
                    bad.append((tenant, seen, count))
                await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(*(work(t) for t in eight_tenants))

    asyncio.run(main())
    assert bad == []
    assert len(order) == rounds * len(eight_tenants)
    assert order[: len(eight_tenants)] == eight_tenants  # the tasks really interleaved


def test_s48_thread_spawned_from_a_session_has_no_tenant_unless_it_opens_one(pg: Env) -> None:
    """Scenario 48: a thread started inside A's session inherits nothing; it sees A only through its own
    session.
    """
    results: dict[str, object] = {}

    def child() -> None:
        with pg.engine.connect() as conn:  # no session: the runtime role alone
            results["setting"] = conn.execute(SETTING).scalar_one()
            results["raw"] = conn.execute(text("SELECT count(*) FROM iso_notes")).scalar_one()
        with pg.factory.for_instance(A) as session:  # explicit: its own tenant session
            results["own"] = own_notes(session)

    with pg.factory.for_instance(A) as session:
        assert own_notes(session) == {A}
        thread = threading.Thread(target=child)
        thread.start()
        thread.join()
    assert results["setting"] in (None, "")
    assert (results["raw"], results["own"]) == (0, {A})


def test_s49_consecutive_jobs_on_one_worker_thread_share_nothing(pg: Env) -> None:
    """Scenario 49: jobs carry their tenant explicitly; A then B then a failing A then B on one thread stay
    apart.
    """

    def job(tenant: uuid.UUID, *, fail: bool = False) -> tuple[set, str | None]:
        with pg.factory.for_instance(tenant) as session:
            seen = own_notes(session)
            if fail:
                session.execute(text("UPDATE iso_notes SET body = 'half done'"))
                raise RuntimeError("job failed")
            session.commit()
        with pg.engine.connect() as conn:
            return seen, conn.execute(SETTING).scalar_one()

    with ThreadPoolExecutor(1) as worker:
        first = worker.submit(job, A).result()
        second = worker.submit(job, B).result()
        with pytest.raises(RuntimeError):
            worker.submit(job, A, fail=True).result()
        third = worker.submit(job, B).result()
    assert [first[0], second[0], third[0]] == [{A}, {B}, {B}]
    assert {first[1], second[1], third[1]} <= {None, ""}
    assert pg.owner_scalar("SELECT count(*) FROM iso_notes WHERE body = 'half done'") == 0


def _listener_count(target) -> int:
    dispatch = target.dispatch
    total = 0
    for name in type(getattr(dispatch, "local", dispatch))._event_names:
        listeners = getattr(dispatch, name)
        # Class-level collections (TenantSession.dispatch) keep listeners per class.
        total += (
            len(listeners._clslevel.get(target, ())) if hasattr(listeners, "_clslevel") else len(listeners)
        )
    return total


def test_s50_sessions_leave_no_listeners_behind(pg: Env) -> None:
    """Scenario 50: opening and closing many sessions (some raising) adds no listener to engine, pool,
    connection or class.
    """
    with pg.engine.connect() as conn:
        before = (
            _listener_count(pg.engine),
            _listener_count(pg.engine.pool),
            _listener_count(conn),
            _listener_count(TenantSession),
        )
    for i in range(20):
        with (
            pytest.raises(ValueError) if i % 2 else _nothing(),
            pg.factory.for_instance(A if i % 3 else B) as session,
        ):
            session.scalars(select(Note)).unique().all()
            if i % 2:
                raise ValueError("body raised")
    with pg.engine.connect() as conn:
        after = (
            _listener_count(pg.engine),
            _listener_count(pg.engine.pool),
            _listener_count(conn),
            _listener_count(TenantSession),
        )
    assert before[3] >= 4  # the guard's class-level listeners are counted, so the check can fail
    assert after == before


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def test_s51_nested_scopes_restore_and_an_exception_rolls_back_only_its_own(pg: Env) -> None:
    """Scenario 51: admin -> A -> B -> back: each scope sees its own rows; an exception in B rolls B back
    only.
    """
    with pg.factory.admin(reason="test s51") as admin:
        assert len(admin.scalars(select(Note)).unique().all()) == COUNTS[A]["notes"] + COUNTS[B]["notes"]
        with pg.factory.for_instance(A) as session_a:
            assert own_notes(session_a) == {A}
            session_a.execute(text("UPDATE iso_notes SET body = 'a was here' WHERE id = 1"))
            with pytest.raises(RuntimeError), pg.factory.for_instance(B) as session_b:
                assert own_notes(session_b) == {B}
                session_b.execute(text("UPDATE iso_notes SET body = 'b was here'"))
                raise RuntimeError("inner scope fails")
            assert own_notes(session_a) == {A}
            assert session_a.execute(SETTING).scalar_one() == str(A)
            session_a.commit()
        assert len(admin.scalars(select(Note)).unique().all()) == COUNTS[A]["notes"] + COUNTS[B]["notes"]
    assert pg.owner_scalar("SELECT count(*) FROM iso_notes WHERE body = 'b was here'") == 0
    assert pg.owner_scalar("SELECT count(*) FROM iso_notes WHERE body = 'a was here'") == 1


def test_s51_a_session_tenant_cannot_be_changed_by_rewriting_its_info(pg: Env) -> None:
    """Scenario 51: rewriting session.info to B neither scopes A's session to B nor lets it run on."""
    with pg.factory.for_instance(A) as session:
        assert own_notes(session) == {A}
        session.commit()
        session.info["tenancy.instance_id"] = B
        with pytest.raises(CrossTenantAccess):
            session.execute(text("SELECT instance_id FROM iso_notes"))
        assert session.tenant_id == A


@pytest.mark.parametrize(
    "escape",
    [
        "SET ROLE {owner}",
        "SET SESSION AUTHORIZATION {owner}",
        "SET row_security = off",
        "ALTER TABLE iso_notes DISABLE ROW LEVEL SECURITY",
        "ALTER TABLE iso_notes NO FORCE ROW LEVEL SECURITY",
        "DROP POLICY tenancy_tenant_isolation ON iso_notes",
        "ALTER ROLE {runtime} BYPASSRLS",
        "SELECT set_config('app.is_admin', 'true', false)",
        "SELECT set_config('row_security', 'off', false)",
    ],
)
def test_s52_runtime_connection_cannot_switch_on_an_escape(pg: Env, escape: str) -> None:
    """Scenario 52: SET ROLE to the owner, row_security off, policy changes or an admin flag fail or change
    nothing.
    """
    sql = escape.format(owner=f'"{pg.owner_role}"', runtime=f'"{pg.runtime_role}"')
    with pg.engine.connect() as conn:
        try:
            with conn.begin():
                conn.execute(text(sql))
                count = conn.execute(text("SELECT count(*) FROM iso_notes")).scalar_one()
                user = conn.execute(text("SELECT current_user")).scalar_one()
        except DBAPIError as exc:
            assert exc.orig is not None and exc.orig.sqlstate in {"42501", "42P01", "22023"}  # type: ignore[union-attr]
        else:
            assert (count, user) == (0, pg.runtime_role)
    assert pg.owner_scalar(
        "SELECT relrowsecurity AND relforcerowsecurity FROM pg_class WHERE relname = 'iso_notes'"
    )


def test_s52_raw_sql_in_a_tenant_session_cannot_switch_to_another_tenant(pg: Env) -> None:
    """Scenario 52: raw SQL in A's session that sets the tenant setting to B sees none of B's rows.

    The seal in the transaction is A's: with B's id it does not verify, so the database shows
    nothing at all (and the next transaction of the session is A's again).
    """
    with pg.factory.for_instance(A) as session:
        session.execute(text("SELECT set_config('tenancy.instance_id', :b, true)"), {"b": str(B)})
        assert {n.instance_id for n in session.scalars(select(Note)).unique()} == set()
        raw = {r[0] for r in session.execute(text("SELECT instance_id FROM iso_notes"))}
        assert raw == set()
        session.commit()
        assert {r[0] for r in session.execute(text("SELECT instance_id FROM iso_notes"))} == {A}
