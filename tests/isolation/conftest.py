"""Fixtures of the isolation battery.

One session-scoped PostgreSQL database: migrated (``tenants``), then the battery's models
created by the OWNER role with ``metadata.create_all`` (so RLS is applied on creation), the
runtime role reaching them only through default privileges. Every test gets tenants A and B
freshly seeded with identical-looking data. ``env`` runs a test on PostgreSQL and on SQLite
(ORM layer only); ``pg`` on PostgreSQL alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, create_engine, text

from tenancy import TenancyWarning, TenantSessionFactory
from tenancy.postgres.roles import grant_runtime_role
from tenancy.testing.postgres import Database, fresh_database
from tests.conftest import migrate
from tests.isolation.models import FUNCTION_SQL, TENANT_TABLES, VIEW_SQL, IsoBase
from tests.isolation.raw_sql import Runner, via_port
from tests.isolation.support import Env, seed
from tests.pgbouncer import pgbouncer


@pytest.fixture(scope="session")
def iso_database(pg_server: str) -> Iterator[Database]:
    """A database with migrations applied and the battery's tables created by the owner."""
    with fresh_database(prefix="tenancy_iso") as db:
        owner = create_engine(db.admin_url)
        migrate(owner, runtime_role=db.runtime)
        with owner.begin() as conn:
            IsoBase.metadata.create_all(conn)
            conn.execute(text(VIEW_SQL))
            conn.execute(text(FUNCTION_SQL))
            # `tenancy grant` grants tenant tables by name: re-run it after creating them.
            grant_runtime_role(conn, db.runtime, also=["iso_note_titles"])
        owner.dispose()
        yield db


@pytest.fixture(scope="session")
def owner_engine(iso_database: Database) -> Iterator[Engine]:
    """The owner role (owns the tables, BYPASSRLS): seeds data and checks what really is stored."""
    engine = create_engine(iso_database.admin_url, pool_size=2)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def app_engine(iso_database: Database, owner_engine: Engine) -> Iterator[Engine]:
    """The runtime role (plain, subject to RLS) on a pool of two connections."""
    engine = create_engine(iso_database.runtime_url, pool_size=2, max_overflow=0, pool_timeout=30)
    with engine.connect() as conn:
        # `tenancy grant` reached the tables that the owner created after the migration.
        for table in TENANT_TABLES:
            granted = conn.execute(
                text("SELECT has_table_privilege(:t, 'SELECT,INSERT,UPDATE,DELETE')"), {"t": table}
            ).scalar_one()
            assert granted, f"runtime role lacks privileges on {table}"
    yield engine
    engine.dispose()


@pytest.fixture
def pg(iso_database: Database, app_engine: Engine, owner_engine: Engine) -> Env:
    """PostgreSQL with tenants A and B freshly seeded; ``factory`` on the runtime role."""
    with owner_engine.begin() as conn:
        seed(conn)
    factory = TenantSessionFactory(app_engine, admin_engine=owner_engine)
    return Env(
        "postgresql",
        app_engine,
        owner_engine,
        factory,
        runtime_role=iso_database.runtime,
        owner_role=iso_database.owner,
        extra={"database": iso_database},
    )


@pytest.fixture(scope="session")
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A SQLite file with the battery's tables (no row-level security there)."""
    path: Path = tmp_path_factory.mktemp("iso") / "iso.db"
    engine = create_engine(f"sqlite:///{path}")
    IsoBase.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def lite(sqlite_engine: Engine) -> Env:
    """SQLite with tenants A and B seeded; the factory warns that only the ORM layer isolates."""
    with sqlite_engine.begin() as conn:
        seed(conn)
    with pytest.warns(TenancyWarning, match="row-level security needs PostgreSQL"):
        factory = TenantSessionFactory(sqlite_engine, admin_engine=sqlite_engine)
    return Env("sqlite", sqlite_engine, sqlite_engine, factory)


@pytest.fixture(params=["postgresql", "sqlite"])
def env(request: pytest.FixtureRequest) -> Env:
    """The ORM-layer scenarios run on both backends; on SQLite the ORM guard is all there is."""
    name = "pg" if request.param == "postgresql" else "lite"
    return request.getfixturevalue(name)


@pytest.fixture
def factory(pg: Env) -> TenantSessionFactory:
    """``TenantSessionFactory(runtime_engine, admin_engine=owner_engine)`` on the seeded database."""
    return pg.factory


@pytest.fixture(scope="session")
def bouncer_port(iso_database: Database) -> Iterator[int]:
    """A PgBouncer (transaction mode, one server connection) in front of the battery's database."""
    info = psycopg.conninfo.conninfo_to_dict(iso_database.superuser_url)
    host, port = str(info.get("host", "127.0.0.1")), int(str(info.get("port", 5432)))
    with ExitStack() as stack:
        try:
            listen = stack.enter_context(pgbouncer(host, port, [iso_database.runtime]))
        except RuntimeError as exc:  # missing or broken: fail with how to get it, never skip
            pytest.fail(str(exc), pytrace=False)
        yield listen


ROUTES = [("direct", "sync"), ("direct", "async"), ("pgbouncer", "sync"), ("pgbouncer", "async")]


@pytest.fixture(params=ROUTES, ids=["-".join(r) for r in ROUTES])
def tenants(request: pytest.FixtureRequest, pg: Env, iso_database: Database) -> Iterator[Runner]:
    """Tenant sessions over a pool of ONE connection: directly or through PgBouncer, sync or async."""
    route, flavor = request.param
    url, connect_args = iso_database.runtime_url, {}
    if route == "pgbouncer":
        url = via_port(url, request.getfixturevalue("bouncer_port"))
        # PgBouncer before 1.21 cannot carry protocol-level prepared statements between clients
        # (psycopg's documented setting for it).
        connect_args = {"prepare_threshold": None}
    runner = Runner(url, pg.key, flavor=flavor, connect_args=connect_args)
    yield runner
    runner.close()
