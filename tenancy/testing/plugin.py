"""pytest plugin: PostgreSQL fixtures with an owner and a runtime role, for isolation tests.

Registered through the ``pytest11`` entry point. Fixtures are session-scoped except
``tenancy_sessions``. Set the ini option ``tenancy_alembic_ini`` (path to your
``alembic.ini``) to migrate the database to head as the owner role; otherwise only roles
and the database are created and your tests create their tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine

from tenancy.db.sessions import TenantSessionFactory
from tenancy.testing.postgres import HOW_TO_GET_ONE, Database, fresh_database, server_url


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("tenancy_alembic_ini", "alembic.ini to migrate tenancy_database with", default="")


@pytest.fixture(scope="session")
def tenancy_database(pytestconfig: pytest.Config) -> Iterator[Database]:
    """A fresh PostgreSQL database, its owner role (BYPASSRLS) and a plain runtime role."""
    try:
        server_url()
    except Exception as exc:
        pytest.fail(f"{exc}\n{HOW_TO_GET_ONE}", pytrace=False)
    with fresh_database(prefix="tenancy_user_test") as db:
        ini = str(pytestconfig.getini("tenancy_alembic_ini") or "")
        if ini:
            from alembic import command
            from alembic.config import Config

            cfg = Config(str(Path(pytestconfig.rootpath, ini)))
            engine = create_engine(db.admin_url)
            with engine.begin() as connection:
                cfg.attributes["connection"] = connection
                cfg.attributes["runtime_role"] = db.runtime
                command.upgrade(cfg, "heads")  # your branch and tenancy's
            engine.dispose()
        yield db


@pytest.fixture(scope="session")
def tenancy_admin_engine(tenancy_database: Database) -> Iterator[Engine]:
    """Engine of the owner role: create tables and seed data with it."""
    engine = create_engine(tenancy_database.admin_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def tenancy_runtime_engine(tenancy_database: Database) -> Iterator[Engine]:
    """Engine of the runtime role, subject to row-level security."""
    engine = create_engine(tenancy_database.runtime_url)
    yield engine
    engine.dispose()


@pytest.fixture
def tenancy_sessions(tenancy_runtime_engine: Engine, tenancy_admin_engine: Engine) -> TenantSessionFactory:
    """A TenantSessionFactory on the runtime engine, with the owner engine for admin()."""
    return TenantSessionFactory(tenancy_runtime_engine, admin_engine=tenancy_admin_engine)
