"""Tenant sessions on Citus: each tenant sees and writes only its own rows on the shards.

The runtime role's sessions reach the shards through the coordinator; RLS is evaluated on
the workers, so these pass only if the tenant setting reaches them (``SET LOCAL`` with
``citus.propagate_set_commands = 'local'``, set by ``tenancy grant``).
"""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from tenancy import CrossTenantWrite, TenantSessionFactory
from tenancy.orm.async_sessions import AsyncTenantSessionFactory
from tests.citus.conftest import A, B, CitusDb, binding_key
from tests.citus.models import Folder, Note


def test_orm_and_raw_sql_see_only_their_tenant(sessions: TenantSessionFactory) -> None:
    for tenant in (A, B):
        with sessions.for_instance(tenant) as session:
            titles = session.scalars(select(Note.title).order_by(Note.title)).all()
            assert titles == [f"{tenant}-1", f"{tenant}-2"]
            # Raw SQL without the tenant predicate fans out to every shard; RLS applies on each.
            assert session.execute(text("SELECT count(*) FROM notes")).scalar_one() == 2
            assert session.execute(text("SELECT DISTINCT instance_id FROM folders")).scalars().all() == [
                tenant
            ]
            assert session.execute(text("SELECT instance_id FROM tenants")).scalars().all() == [tenant]
            joined = session.execute(
                select(func.count()).select_from(Note).join(Folder, Folder.id == Note.folder_id)
            ).scalar_one()
            assert joined == 2


def test_writes_for_another_tenant_are_refused_on_the_shard(sessions: TenantSessionFactory) -> None:
    with sessions.for_instance(A) as session:
        folder_id = session.scalars(select(Folder.id)).one()
        with pytest.raises(CrossTenantWrite):
            session.execute(
                text("INSERT INTO notes (instance_id, id, folder_id, title) VALUES (:b, :id, 1, 'x')"),
                {"b": B, "id": uuid.uuid4()},
            )
        session.rollback()
        assert (
            session.execute(text("UPDATE notes SET title = 'mine' WHERE instance_id = :b"), {"b": B}).rowcount
            == 0
        )
        assert session.execute(text("DELETE FROM folders WHERE instance_id = :b"), {"b": B}).rowcount == 0
        session.commit()
        # The setting is applied again in the next transaction and in savepoints.
        with session.begin_nested():
            session.add(Note(folder_id=folder_id, title="in a savepoint"))
        session.rollback()
        assert session.execute(text("SELECT count(*) FROM notes")).scalar_one() == 2


def test_sessions_bring_no_warnings_from_the_workers(
    sessions: TenantSessionFactory, notices: list[str]
) -> None:
    with sessions.for_instance(B) as session:
        assert session.execute(text("SELECT count(*) FROM notes")).scalar_one() == 2
        session.commit()
        assert session.scalars(select(Note.title)).all()
    assert notices == []


def test_the_orm_is_router_executed_and_raw_sql_fans_out(sessions: TenantSessionFactory) -> None:
    with sessions.for_instance(A) as session:
        orm = (
            session.execute(text("EXPLAIN SELECT * FROM notes WHERE instance_id = :a"), {"a": A})
            .scalars()
            .all()
        )
        raw = session.execute(text("EXPLAIN SELECT * FROM notes")).scalars().all()
    assert any("Task Count: 1" in line for line in orm), orm
    assert not any("Task Count: 1" in line for line in raw), raw


def test_async_sessions_too(citus_db: CitusDb, sessions: TenantSessionFactory) -> None:
    async def titles() -> list[str]:
        engine = create_async_engine(citus_db.cluster.runtime_url)
        try:
            factory = AsyncTenantSessionFactory(engine, binding_key=binding_key(citus_db))
            async with factory.for_instance(A) as session:
                return list((await session.scalars(select(Note.title).order_by(Note.title))).all())
        finally:
            await engine.dispose()

    assert asyncio.run(titles()) == [f"{A}-1", f"{A}-2"]


def test_without_the_propagation_setting_tenants_see_nothing(
    citus_db: CitusDb, sessions: TenantSessionFactory
) -> None:
    """The failure mode `tenancy check` reports: no leak, but no rows either."""
    role = citus_db.cluster.runtime
    with citus_db.admin.connect() as conn:
        settings = conn.execute(
            text("SELECT setconfig FROM pg_db_role_setting WHERE setconfig::text LIKE '%citus%'")
        ).all()
    assert settings, "tenancy grant set citus.propagate_set_commands"
    engine: Engine = create_engine(
        citus_db.cluster.runtime_url, connect_args={"options": "-c citus.propagate_set_commands=none"}
    )
    try:
        with TenantSessionFactory(engine, binding_key=binding_key(citus_db)).for_instance(A) as session:
            assert session.execute(text("SELECT count(*) FROM notes")).scalar_one() == 0
            assert session.scalars(select(Note)).all() == []
    finally:
        engine.dispose()
    assert role


class _UserConnection(psycopg.Connection):  # type: ignore[type-arg]
    """A psycopg subclass of the user's: never adopted, so the binding goes as statements."""


def test_the_fallback_path_reaches_the_shards_too(citus_db: CitusDb) -> None:
    """No set_config path that silently reads nothing: without the fast path the binding is
    sent as SET LOCAL statements of their own."""
    url = citus_db.cluster.coordinator.url(citus_db.cluster.runtime)
    engine = create_engine("postgresql+psycopg://", creator=lambda: _UserConnection.connect(url), pool_size=1)
    try:
        sessions = TenantSessionFactory(engine, binding_key=binding_key(citus_db))
        for _ in range(2):
            with sessions.for_instance(A) as session:
                assert type(session.connection().connection.driver_connection) is _UserConnection
                assert session.scalars(select(Note.title).order_by(Note.title)).all() == [f"{A}-1", f"{A}-2"]
                assert session.execute(text("SELECT count(*) FROM notes")).scalar_one() == 2
    finally:
        engine.dispose()
