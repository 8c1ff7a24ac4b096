"""AsyncSession parity: the same isolation from asyncio code (ISOLATION.md asks both flavours)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import create_async_engine

import tenancy
from tenancy.tenants.model import Tenant
from tenancy.tenants.registration import upsert_seen_tenant
from tenancy.testing.postgres import Database

pytestmark = pytest.mark.postgres


def _run(coro):
    return asyncio.run(coro)


async def _factory(db: Database, **kw):
    engine = create_async_engine(db.runtime_url, pool_size=2, max_overflow=0, **kw)
    admin = create_async_engine(db.admin_url)
    return engine, admin, tenancy.AsyncTenantSessionFactory(engine, admin_engine=admin)


def test_async_sessions_read_and_write_only_their_tenant(pg_database: Database) -> None:
    """Each async tenant session stamps its rows and sees only them, ORM and raw SQL alike."""

    async def main() -> None:
        engine, admin, sessions = await _factory(pg_database)
        a, b = uuid.uuid4(), uuid.uuid4()
        for tenant in (a, b):
            async with sessions.for_instance(tenant) as session:
                # The runtime role writes `tenants` only through tenancy.register_tenant.
                await session.run_sync(lambda s, t=tenant: upsert_seen_tenant(s, t, site_id="same-site"))
                await session.commit()
                # After commit the next transaction carries the setting again.
                rows = (await session.scalars(select(Tenant))).all()
                assert [r.instance_id for r in rows] == [tenant]
                raw = await session.execute(text("SELECT count(*) FROM tenants"))
                assert raw.scalar_one() == 1
        async with sessions.for_instance(a) as session:
            assert await session.get(Tenant, b) is None
            with pytest.raises(tenancy.CrossTenantWrite):
                session.add(Tenant(instance_id=b))
        async with sessions.admin(reason="test") as s:
            count = await s.scalar(
                select(func.count()).select_from(Tenant).where(Tenant.instance_id.in_([a, b]))
            )
            assert count == 2
        await engine.dispose()
        await admin.dispose()

    _run(main())


def test_many_async_tasks_on_a_pool_of_two_each_see_their_own_tenant(pg_database: Database) -> None:
    """40 concurrent tasks, 8 tenants, pool_size=2: every result belongs to the task's tenant (47)."""

    async def main() -> None:
        engine, admin, sessions = await _factory(pg_database)
        tenants = [uuid.uuid4() for _ in range(8)]
        for tenant in tenants:
            async with sessions.for_instance(tenant) as session:
                await session.run_sync(lambda s, t=tenant: upsert_seen_tenant(s, t, site_id=str(t)))
                await session.commit()

        async def task(i: int) -> tuple[uuid.UUID, list[str | None], str]:
            tenant = tenants[i % len(tenants)]
            async with sessions.for_instance(tenant) as session:
                await asyncio.sleep(0)  # let other tasks interleave on the two connections
                sites = (await session.scalars(select(Tenant.site_id))).all()
                setting = (
                    await session.execute(text("SELECT current_setting('tenancy.instance_id')"))
                ).scalar_one()
                return tenant, list(sites), setting

        for tenant, sites, setting in await asyncio.gather(*(task(i) for i in range(40))):
            assert sites == [str(tenant)]
            assert setting == str(tenant)
        await engine.dispose()
        await admin.dispose()

    _run(main())


def test_async_autocommit_engine_is_refused(pg_database: Database) -> None:
    """An AUTOCOMMIT async engine cannot run tenant statements unscoped (45)."""

    async def main() -> None:
        engine, admin, sessions = await _factory(pg_database, isolation_level="AUTOCOMMIT")
        async with sessions.for_instance(uuid.uuid4()) as session:
            with pytest.raises(tenancy.ConfigurationError, match="AUTOCOMMIT"):
                await session.execute(select(Tenant))
        await engine.dispose()
        await admin.dispose()

    _run(main())
