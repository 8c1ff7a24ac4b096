"""Shared fixtures: real PostgreSQL databases with an owner and a runtime role, migrated."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, text

from tenancy.migrations.environment import TENANCY_VERSIONS_RESOURCE
from tenancy.postgres.binding import BindingKey, newest_key
from tenancy.postgres.isolation import enable_isolation
from tenancy.testing.postgres import HOW_TO_GET_ONE, Database, fresh_database, server_url

ROOT = Path(__file__).resolve().parents[1]


def alembic_config(scripts: Path = ROOT / "migrations") -> Config:
    """The repository's alembic.ini, as a user would run it, on the script directory *scripts*
    (its ``versions/`` and tenancy's revisions are the version locations)."""
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(scripts))
    cfg.set_main_option("version_locations", f"{scripts / 'versions'}\n{TENANCY_VERSIONS_RESOURCE}")
    return cfg


def migrate(engine: Engine, revision: str = "head", *, runtime_role: str | None = None) -> None:
    """Run `alembic upgrade` on *engine* through config.attributes (as the owner role)."""
    cfg = alembic_config()
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        cfg.attributes["runtime_role"] = runtime_role
        command.upgrade(cfg, revision)


@pytest.fixture(scope="session")
def pg_server() -> str:
    """A superuser URL of a running PostgreSQL (started if needed); fails, never skips."""
    try:
        return server_url()
    except Exception as exc:
        pytest.fail(f"{exc}\n{HOW_TO_GET_ONE}", pytrace=False)


@pytest.fixture(scope="session")
def pg_database(pg_server: str) -> Iterator[Database]:
    """One migrated database for the session, runtime role granted."""
    with fresh_database() as db:
        admin = create_engine(db.admin_url)
        migrate(admin, runtime_role=db.runtime)
        admin.dispose()
        yield db


@pytest.fixture
def empty_pg_database(pg_server: str) -> Iterator[Database]:
    """A fresh, unmigrated database for one test."""
    with fresh_database() as db:
        yield db


@pytest.fixture
def admin_engine(pg_database: Database) -> Iterator[Engine]:
    """Engine of the owner role (BYPASSRLS) on the session database."""
    engine = create_engine(pg_database.admin_url)
    yield engine
    engine.dispose()


@pytest.fixture
def runtime_engine(pg_database: Database) -> Iterator[Engine]:
    """Engine of the runtime role (subject to RLS) on the session database."""
    engine = create_engine(pg_database.runtime_url, pool_size=2, max_overflow=0)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def binding_key(pg_database: Database) -> BindingKey:
    """The session database's binding key, as a deployment would configure it."""
    engine = create_engine(pg_database.admin_url)
    try:
        with engine.connect() as connection:
            key = newest_key(connection)
    finally:
        engine.dispose()
    assert key is not None
    return key


def create_tenant_table(connection: Connection, name: str, *, isolate: bool = True) -> None:
    """A minimal tenant table ``name(instance_id, id)`` with primary key ``pk_<name>``, made by
    the owner and put under isolation (which also grants it to the runtime role)."""
    connection.execute(
        text(
            f"CREATE TABLE IF NOT EXISTS {name} (instance_id uuid NOT NULL, id int NOT NULL,"
            f" CONSTRAINT pk_{name} PRIMARY KEY (instance_id, id))"
        )
    )
    if isolate:
        enable_isolation(connection, name)
