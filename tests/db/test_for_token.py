"""From a Wix access token to a tenant session, over real HTTP against the emulator."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.ext.asyncio import create_async_engine

import tenancy
from tenancy.emulator import Emulator
from tenancy.tenants.model import Tenant
from tenancy.testing.postgres import Database
from tests.wix_helpers import client_for

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def emu():
    with Emulator(sites=3, seed=7) as emulator:
        yield emulator


@pytest.fixture
def sessions(emu, runtime_engine, admin_engine):
    resolver = tenancy.TokenResolver(client_for(emu))
    return tenancy.TenantSessionFactory(runtime_engine, admin_engine=admin_engine, resolver=resolver)


def _row(admin_engine, instance_id: uuid.UUID) -> Tenant | None:
    with tenancy.TenantSessionFactory(admin_engine, admin_engine=admin_engine).admin(reason="test") as s:
        row = s.get(Tenant, instance_id)
        if row is not None:
            s.expunge(row)
        return row


def test_a_token_opens_its_instances_session_and_registers_it(emu, sessions, admin_engine) -> None:
    """A valid token ("Bearer ..." or raw) opens that instance's session; the tenant row appears, due."""
    iid = uuid.UUID(emu.instance_ids[0])
    token = emu.mint_token(emu.instance_ids[0])
    with sessions.for_token(f"Bearer {token}") as session:
        assert session.info["tenancy.instance_id"] == iid
        assert [t.instance_id for t in session.scalars(select(Tenant))] == [iid]
        assert session.execute(text("SELECT current_setting('tenancy.instance_id')")).scalar() == str(iid)
    row = _row(admin_engine, iid)
    assert row is not None and row.status == "active" and row.last_synced_at is None
    with sessions.for_token(token) as session:
        assert session.tenant_id == iid


def test_a_removed_tenant_is_never_reactivated_by_a_token(emu, sessions, admin_engine) -> None:
    """After AppRemoved, a token the resolver cached before the removal gets TenantRemoved (an
    InvalidToken: 401) once the registry checks again (another process, or after its ttl):
    no session, and the row stays removed. Only AppInstalled makes the tenant active again."""
    iid = uuid.UUID(emu.instance_ids[1])
    token = emu.mint_token(emu.instance_ids[1])
    with sessions.for_token(token):
        pass
    asked = emu.count("token_info")
    removed = tenancy.WixEvent(event_type="AppRemoved", instance_id=iid, payload={}, issued_at=2_000_000_000)
    assert tenancy.apply_event(admin_engine, removed) == "removed"
    sessions.registry.forget()  # what another process (or this one after the registry ttl) sees
    for _ in range(2):
        with pytest.raises(tenancy.TenantRemoved) as raised:
            sessions.for_token(token)
        assert isinstance(raised.value, tenancy.InvalidToken) and raised.value.__cause__ is None
    assert emu.count("token_info") == asked  # the cached answer was used, and refused anyway
    row = _row(admin_engine, iid)
    assert row is not None and row.status == "removed"
    installed = tenancy.WixEvent(
        event_type="AppInstalled", instance_id=iid, payload={}, issued_at=2_000_000_001
    )
    assert tenancy.apply_event(admin_engine, installed) == "refresh"
    with sessions.for_token(token) as session:
        assert session.tenant_id == iid


def test_a_removed_tenant_is_refused_on_the_async_factory_too(
    emu, pg_database: Database, admin_engine
) -> None:
    """The async factory registers through the sync one's path: TenantRemoved, nothing opened."""
    raw_iid = emu.add_site()
    iid = uuid.UUID(raw_iid)
    token = emu.mint_token(raw_iid)

    async def run() -> None:
        engine = create_async_engine(pg_database.runtime_url)
        admin = create_async_engine(pg_database.admin_url)
        factory = tenancy.AsyncTenantSessionFactory(
            engine, admin_engine=admin, resolver=tenancy.TokenResolver(client_for(emu))
        )
        try:
            async with await factory.for_token(token):
                pass
            assert not factory.registry.needs(iid)  # registered once: later tokens write nothing
            removed = tenancy.WixEvent(event_type="AppRemoved", instance_id=iid, payload={})
            assert tenancy.apply_event(admin_engine, removed) == "removed"
            factory.registry.forget()
            with pytest.raises(tenancy.TenantRemoved):
                await factory.for_token(token)
        finally:
            await engine.dispose()
            await admin.dispose()

    asyncio.run(run())
    row = _row(admin_engine, iid)
    assert row is not None and row.status == "removed"


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda emu: "garbage-token", id="unknown"),
        pytest.param(lambda emu: emu.mint_token(emu.instance_ids[2], ttl=-10), id="expired"),
        pytest.param(
            lambda emu: emu.mint_token(emu.instance_ids[2], client_id=str(uuid.uuid4())), id="other-app"
        ),
        pytest.param(lambda emu: "", id="empty"),
        pytest.param(lambda emu: "Bearer ", id="bearer-only"),
        pytest.param(lambda emu: "tok\x00en", id="non-printable"),
        pytest.param(lambda emu: "x" * 10_000, id="oversized"),
    ],
)
def test_every_refused_token_raises_invalid_token_and_opens_nothing(
    emu, sessions, runtime_engine, admin_engine, make_token
) -> None:
    """Forged, expired, other-app or malformed tokens: InvalidToken, no SQL, no row (scenario 57)."""
    token = make_token(emu)
    statements: list[str] = []

    def count(*args) -> None:
        statements.append(args[2])

    event.listen(runtime_engine, "before_cursor_execute", count)
    try:
        with pytest.raises(tenancy.InvalidToken) as caught:
            sessions.for_token(token)
    finally:
        event.remove(runtime_engine, "before_cursor_execute", count)
    assert statements == []
    if token:
        assert token not in str(caught.value)
    assert _row(admin_engine, uuid.UUID(emu.instance_ids[2])) is None


def test_an_uninstalled_apps_token_is_refused(emu, sessions) -> None:
    """After the site removes the app, Token Info calls its tokens inactive: InvalidToken."""
    iid = emu.add_site()
    token = emu.mint_token(iid)
    emu.remove_app(iid)
    with pytest.raises(tenancy.InvalidToken):
        sessions.for_token(token)


def test_for_token_without_a_resolver_is_a_configuration_error(runtime_engine) -> None:
    """for_token() on a factory built without a resolver says what is missing."""
    with pytest.raises(tenancy.ConfigurationError, match="resolver"):
        tenancy.TenantSessionFactory(runtime_engine).for_token("whatever")


def test_concurrent_first_requests_of_a_new_tenant_register_it_once(emu, sessions, admin_engine) -> None:
    """16 threads presenting a new instance's token at once: all get its session, one row exists."""
    iid = emu.add_site()
    token = emu.mint_token(iid)
    errors: list[BaseException] = []
    seen: list[uuid.UUID] = []

    def request() -> None:
        try:
            with sessions.for_token(token) as session:
                seen.append(session.scalars(select(Tenant.instance_id)).one())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=request) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert seen == [uuid.UUID(iid)] * 16
    assert emu.count("token_info") >= 1


def test_async_for_token(emu, pg_database: Database) -> None:
    """The async factory resolves in a worker thread and opens the instance's AsyncSession."""

    async def main() -> None:
        engine = create_async_engine(pg_database.runtime_url)
        admin = create_async_engine(pg_database.admin_url)
        sessions = tenancy.AsyncTenantSessionFactory(
            engine, admin_engine=admin, resolver=tenancy.TokenResolver(client_for(emu))
        )
        iid = emu.add_site()
        session = await sessions.for_token(emu.mint_token(iid))
        async with session:
            assert (await session.scalars(select(Tenant.instance_id))).all() == [uuid.UUID(iid)]
        with pytest.raises(tenancy.InvalidToken):
            await sessions.for_token("garbage")
        await engine.dispose()
        await admin.dispose()

    asyncio.run(main())
