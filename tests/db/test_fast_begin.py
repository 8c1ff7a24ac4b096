"""The tenant setting rides with psycopg's BEGIN: the same isolation, one round trip less."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import pq
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session

from tenancy import Tenant, TenantSessionFactory
from tenancy.postgres.binding import BindingKey, seal
from tenancy.postgres.psycopg_begin import SUPPORTED, TenantBeginConnection, arm
from tenancy.testing.postgres import Database
from tests.wire import RoundTripProxy

pytestmark = pytest.mark.postgres

T1 = uuid.UUID("11111111-1111-4111-8111-111111111111")
T2 = uuid.UUID("22222222-2222-4222-8222-222222222222")
KEY = BindingKey("1", bytes(range(32)))  # raw connections: the settings travel, whatever the key
CURRENT = text("SELECT current_setting('tenancy.instance_id', true)")


class UserConnection(psycopg.Connection):
    """A user's own psycopg connection class."""


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _setting(session_or_conn) -> str | None:
    value = session_or_conn.execute(CURRENT).scalar_one()
    return value or None


@pytest.fixture
def factory(runtime_engine: Engine, binding_key: BindingKey) -> TenantSessionFactory:
    return TenantSessionFactory(runtime_engine, binding_key=binding_key)


@pytest.fixture
def proxy(pg_database: Database) -> Iterator[RoundTripProxy]:
    info = psycopg.conninfo.conninfo_to_dict(_libpq(pg_database.runtime_url))
    with RoundTripProxy(str(info["host"]), int(str(info["port"]))) as p:
        yield p


def _via(url: str, proxy: RoundTripProxy) -> str:
    head, _, rest = url.partition("@")
    return f"{head}@127.0.0.1:{proxy.port}/{rest.split('/', 1)[1]}"


def test_psycopg_still_has_the_private_hooks_we_use(pg_database: Database) -> None:
    """Fails loudly when a psycopg upgrade moves the private API postgres/psycopg_begin.py uses."""
    assert SUPPORTED
    assert inspect.isgeneratorfunction(psycopg.Connection._start_query)
    # Every statement a cursor runs opens the transaction through the connection's _start_query.
    from psycopg._cursor_base import BaseCursor

    assert "self._conn._start_query()" in inspect.getsource(BaseCursor._start_query)
    assert "self._get_tx_start_command()" in inspect.getsource(psycopg.Connection._start_query)
    # The rest of what psycopg_begin.py's docstring lists.
    from psycopg import generators
    from psycopg._connection_base import BaseConnection

    for name in ("_start_query", "_get_tx_start_command", "_check_connection_ok"):
        assert callable(getattr(BaseConnection, name)), name
    assert inspect.isgeneratorfunction(generators.send)
    assert inspect.isgeneratorfunction(generators.fetch_many)
    with psycopg.Connection.connect(_libpq(pg_database.runtime_url)) as conn:
        assert conn._autocommit is False and conn._pipeline is None
        assert conn.pgconn._encoding


def test_listeners_only_on_engines_tenancy_was_given(pg_database: Database, binding_key: BindingKey) -> None:
    """The fast path's pool hooks go on the factory's engine, never on every pool in the process."""
    from sqlalchemy.pool import Pool

    from tenancy.postgres import psycopg_begin

    mine, other = create_engine(pg_database.runtime_url), create_engine(pg_database.runtime_url)
    try:
        TenantSessionFactory(mine, binding_key=binding_key)
        for hook, fn in (("connect", psycopg_begin._adopt), ("checkin", psycopg_begin._disarm_on_checkin)):
            assert event.contains(mine, hook, fn)
            assert not event.contains(other, hook, fn)
            assert not event.contains(Pool, hook, fn)
        with other.connect() as conn:
            assert type(conn.connection.driver_connection) is psycopg.Connection
    finally:
        mine.dispose()
        other.dispose()


def test_a_tenant_session_uses_the_fast_path_and_sees_its_setting(factory: TenantSessionFactory) -> None:
    """The factory's engine opens TenantBeginConnections and the setting is in the first transaction."""
    with factory.for_instance(T1) as s:
        assert _setting(s) == str(T1)
        assert isinstance(s.connection().connection.driver_connection, TenantBeginConnection)


def test_the_users_connect_hooks_still_run(pg_database: Database, binding_key: BindingKey) -> None:
    """A do_connect hook registered after the factory (e.g. a password from a vault) still applies."""
    engine = create_engine(pg_database.runtime_url)
    try:
        factory = TenantSessionFactory(engine, binding_key=binding_key)

        @event.listens_for(engine, "do_connect")
        def _name(dialect, rec, cargs, cparams) -> None:
            cparams["application_name"] = "from-a-hook"

        with factory.for_instance(T1) as s:
            assert s.execute(text("SHOW application_name")).scalar_one() == "from-a-hook"
            assert _setting(s) == str(T1)
            assert isinstance(s.connection().connection.driver_connection, TenantBeginConnection)
    finally:
        engine.dispose()


def test_the_setting_is_in_every_transaction(factory: TenantSessionFactory) -> None:
    """After commit, rollback, a failed statement, and inside savepoints, the setting is there."""
    with factory.for_instance(T1) as s:
        assert _setting(s) == str(T1)
        s.commit()
        assert _setting(s) == str(T1)
        s.rollback()
        assert _setting(s) == str(T1)
        with pytest.raises(Exception, match="division by zero"):
            s.execute(text("SELECT 1/0"))
        s.rollback()
        assert _setting(s) == str(T1)
        with s.begin_nested():
            assert _setting(s) == str(T1)
        nested = s.begin_nested()
        assert _setting(s) == str(T1)
        nested.rollback()
        assert _setting(s) == str(T1)
        s.execute(text("COMMIT"))  # the server transaction ends behind SQLAlchemy's back
        assert _setting(s) == str(T1)  # the next BEGIN still carries it


def test_row_level_security_sees_the_setting(factory: TenantSessionFactory, admin_engine: Engine) -> None:
    """text() queries (RLS only, no ORM criteria) see the session's tenant and no other."""
    with Session(admin_engine) as admin:
        admin.add_all([Tenant(instance_id=T1), Tenant(instance_id=T2)])
        admin.commit()
    try:
        for tenant in (T1, T2):
            with factory.for_instance(tenant) as s:
                assert s.execute(text("SELECT instance_id FROM tenants")).scalars().all() == [tenant]
                s.commit()
                assert s.execute(text("SELECT instance_id FROM tenants")).scalars().all() == [tenant]
    finally:
        with admin_engine.begin() as conn:
            conn.execute(text("DELETE FROM tenants WHERE instance_id IN (:a, :b)"), {"a": T1, "b": T2})


@pytest.mark.parametrize("reset_on_return", ["rollback", None])
@pytest.mark.parametrize("statements", [0, 1])
def test_nothing_is_left_for_the_next_checkout(
    pg_database: Database, reset_on_return, statements, binding_key: BindingKey
) -> None:
    """A pooled connection carries no setting (armed or applied) to a plain checkout."""
    engine = create_engine(
        pg_database.runtime_url, pool_size=1, max_overflow=0, pool_reset_on_return=reset_on_return
    )
    try:
        factory = TenantSessionFactory(engine, binding_key=binding_key)
        with factory.for_instance(T1) as s:
            s.connection()  # begins the transaction: the setting is armed
            for _ in range(statements):
                assert _setting(s) == str(T1)
        with engine.connect() as conn:
            driver = conn.connection.driver_connection
            assert isinstance(driver, TenantBeginConnection)
            assert driver._tenancy_binding is None
            assert _setting(conn) is None
    finally:
        engine.dispose()


def _round_trips(proxy: RoundTripProxy, work, n: int = 20) -> float:
    for _ in range(8):  # connect, role check, psycopg preparing statements after 5 runs
        work()
    proxy.reset()
    for _ in range(n):
        work()
    return proxy.round_trips / n


def test_a_tenant_transaction_costs_no_extra_round_trip(
    pg_database: Database, proxy: RoundTripProxy, binding_key: BindingKey
) -> None:
    """Counted on the wire: reset+BEGIN+setting, SELECT, COMMIT = 3 trips, like an unscoped transaction."""
    fast = create_engine(_via(pg_database.runtime_url, proxy), pool_size=1)
    # A psycopg subclass of the user's is left alone: the session falls back to the statement.
    slow_url = _libpq(_via(pg_database.runtime_url, proxy))
    slow = create_engine(
        "postgresql+psycopg://", creator=lambda: UserConnection.connect(slow_url), pool_size=1
    )
    try:
        fast_factory = TenantSessionFactory(fast, binding_key=binding_key)
        slow_factory = TenantSessionFactory(slow, binding_key=binding_key)

        def tenant_txn(factory: TenantSessionFactory):
            def run() -> None:
                with factory.for_instance(T1) as s:
                    assert _setting(s) == str(T1)
                    s.commit()

            return run

        def plain_txn() -> None:
            with fast.begin() as conn:
                assert _setting(conn) is None

        plain = _round_trips(proxy, plain_txn)
        assert _round_trips(proxy, tenant_txn(fast_factory)) == plain == 3
        # The fallback: the binding (which resets the session first) is a statement of its own.
        assert _round_trips(proxy, tenant_txn(slow_factory)) == plain + 1
    finally:
        fast.dispose()
        slow.dispose()


def test_isolation_level_and_the_setting_share_the_begin(
    pg_database: Database, binding_key: BindingKey
) -> None:
    """BEGIN keeps psycopg's isolation level / read-only clauses and still carries the setting."""
    engine = create_engine(pg_database.runtime_url, isolation_level="SERIALIZABLE")
    try:
        with TenantSessionFactory(engine, binding_key=binding_key).for_instance(T1) as s:
            assert _setting(s) == str(T1)
            assert s.execute(text("SHOW transaction_isolation")).scalar_one() == "serializable"
    finally:
        engine.dispose()


@pytest.fixture
def raw(pg_database: Database) -> Iterator[TenantBeginConnection]:
    conn = TenantBeginConnection.connect(_libpq(pg_database.runtime_url))
    yield conn
    conn.close()


def _raw_setting(conn: psycopg.Connection) -> str | None:
    row = conn.execute("SELECT current_setting('tenancy.instance_id', true)").fetchone()
    return (row[0] or None) if row else None


def test_armed_connection_applies_then_forgets(raw: TenantBeginConnection) -> None:
    """Armed: the next BEGIN carries the setting; commit/rollback disarm it."""
    assert arm(raw, T1, seal(KEY, T1))
    assert _raw_setting(raw) == str(T1)
    assert raw.pgconn.transaction_status == pq.TransactionStatus.INTRANS
    assert not arm(raw, T2, seal(KEY, T2))  # inside a transaction: the caller must use a statement
    raw.rollback()
    assert _raw_setting(raw) is None
    raw.rollback()
    assert arm(raw, T2, seal(KEY, T2))
    assert _raw_setting(raw) == str(T2)
    raw.commit()
    assert _raw_setting(raw) is None


def test_pipeline_mode_refuses_to_begin_without_the_binding(raw: TenantBeginConnection) -> None:
    """In psycopg's pipeline mode the binding cannot ride with BEGIN: refused, never run unbound."""
    assert arm(raw, T1, seal(KEY, T1))
    with pytest.raises(psycopg.ProgrammingError, match="pipeline"), raw.pipeline():
        raw.execute("SELECT 1")
    raw.rollback()


def test_autocommit_after_arming_fails_closed(raw: TenantBeginConnection) -> None:
    """Switched to autocommit while armed: statements are refused, not run without the setting."""
    assert arm(raw, T1, seal(KEY, T1))
    raw.autocommit = True
    with pytest.raises(psycopg.ProgrammingError, match="autocommit"):
        raw.execute("SELECT 1")
    raw.autocommit = False
    raw.rollback()
    assert raw._tenancy_binding is None


def test_other_begin_paths_fail_closed(raw: TenantBeginConnection) -> None:
    """psycopg's own transaction() block opens a transaction without the binding: it binds nothing."""
    assert arm(raw, T1, seal(KEY, T1))
    with raw.transaction():
        assert _raw_setting(raw) is None
    raw.rollback()
    assert raw.pgconn.transaction_status == pq.TransactionStatus.IDLE


def test_other_connections_are_never_armed(pg_database: Database) -> None:
    """Plain psycopg connections and autocommit connections are refused: the caller falls back."""
    with psycopg.connect(_libpq(pg_database.runtime_url)) as plain:
        assert not arm(plain, T1, seal(KEY, T1))
    with TenantBeginConnection.connect(_libpq(pg_database.runtime_url), autocommit=True) as auto:
        assert not arm(auto, T1, seal(KEY, T1))


def test_the_binding_is_bound_never_inlined(raw: TenantBeginConnection) -> None:
    """The BEGIN pipeline sends the id and seal as parameters: the statement text holds neither."""
    from tenancy.postgres.binding import BIND_SQL

    assert "$1" in BIND_SQL and "$2" in BIND_SQL
    assert arm(raw, T1, seal(KEY, T1))
    assert _raw_setting(raw) == str(T1)
    row = raw.execute("SELECT current_setting('tenancy.seal', true)").fetchone()
    assert row == (seal(KEY, T1),)
    raw.rollback()


def test_async_sessions_use_the_fast_path_too(
    pg_database: Database, proxy: RoundTripProxy, binding_key: BindingKey
) -> None:
    """AsyncTenantSessionFactory: the setting is in every transaction, with no extra round trip."""
    import asyncio

    from sqlalchemy.ext.asyncio import create_async_engine

    from tenancy import AsyncTenantSessionFactory
    from tenancy.postgres.psycopg_begin import AsyncTenantBeginConnection

    async def main() -> None:
        engine = create_async_engine(_via(pg_database.runtime_url, proxy), pool_size=1, max_overflow=0)
        sessions = AsyncTenantSessionFactory(engine, binding_key=binding_key)
        try:

            async def tenant_txn() -> None:
                async with sessions.for_instance(T1) as s:
                    assert (await s.execute(CURRENT)).scalar_one() == str(T1)
                    conn = await s.connection()
                    raw = await conn.get_raw_connection()
                    assert isinstance(raw.driver_connection, AsyncTenantBeginConnection)
                    await s.commit()
                    assert (await s.execute(CURRENT)).scalar_one() == str(T1)  # after commit
                    await s.rollback()

            async def plain_txn() -> None:
                async with engine.connect() as conn:
                    assert (await conn.execute(CURRENT)).scalar_one() in (None, "")
                    await conn.commit()
                    assert (await conn.execute(CURRENT)).scalar_one() in (None, "")
                    await conn.rollback()

            for _ in range(8):
                await tenant_txn()
                await plain_txn()
            counts = []
            for work in (tenant_txn, plain_txn):
                proxy.reset()
                for _ in range(10):
                    await work()
                counts.append(proxy.round_trips / 10)
            assert counts[0] == counts[1] == 6  # two transactions of BEGIN, SELECT, COMMIT/ROLLBACK
        finally:
            await engine.dispose()

    asyncio.run(main())


def test_a_sql_prepared_statement_taints_the_connection_on_both_paths(
    pg_database: Database, binding_key: BindingKey
) -> None:
    """After SQL `PREPARE`, the next tenant transaction refuses the connection with the same
    tenancy error on the fast path and the fallback."""
    from tenancy import CrossTenantAccess

    dsn = _libpq(pg_database.runtime_url)
    fast = create_engine(pg_database.runtime_url, pool_size=1, max_overflow=0)
    slow = create_engine("postgresql+psycopg://", creator=lambda: UserConnection.connect(dsn), pool_size=1)
    try:
        for engine in (fast, slow):
            factory = TenantSessionFactory(engine, binding_key=binding_key)
            with factory.for_instance(T1) as s:
                s.execute(text("PREPARE _pg3_0 AS SELECT 1"))
                s.commit()
                with pytest.raises(CrossTenantAccess, match="prepared statements"):
                    s.execute(text("SELECT 1"))
            with factory.for_instance(T1) as s:  # a fresh connection replaced the tainted one
                assert _setting(s) == str(T1)
    finally:
        fast.dispose()
        slow.dispose()
