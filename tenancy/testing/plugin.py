"""pytest plugin: PostgreSQL fixtures with an owner and a runtime role, for isolation tests.

Registered through the ``pytest11`` entry point. Fixtures are session-scoped except
``tenancy_sessions``. Set the ini option ``tenancy_alembic_ini`` (path to your ``alembic.ini``,
relative to the rootdir) to migrate the database with ``alembic upgrade heads`` as the owner
role; otherwise only roles and the database are created and your tests create their tables.

The migration runs on the test database whatever your ``env.py`` reads: the connection is in
``config.attributes["connection"]``, and ``sqlalchemy.url``, ``TENANCY_ADMIN_DATABASE_URL`` and
``DATABASE_URL`` point at the test database while it runs. Afterwards the runtime role is
granted, and the ``tenants`` table must exist there, else the session fails saying what to change.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from tenancy.orm.sessions import TenantSessionFactory
from tenancy.postgres.roles import grant_runtime_role
from tenancy.settings import ADMIN_URL_VARIABLE, URL_VARIABLE
from tenancy.testing.postgres import HOW_TO_GET_ONE, Database, fresh_database, server_url

INI_OPTION = "tenancy_alembic_ini"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        INI_OPTION, "alembic.ini to migrate tenancy_database with (alembic upgrade heads)", default=""
    )


@pytest.fixture(scope="session")
def tenancy_database(pytestconfig: pytest.Config) -> Iterator[Database]:
    """A fresh PostgreSQL database, its owner role (BYPASSRLS) and a plain runtime role."""
    try:
        server_url()
    except Exception as exc:
        pytest.fail(f"{exc}\n{HOW_TO_GET_ONE}", pytrace=False)
    with fresh_database(prefix="tenancy_user_test") as db:
        ini = str(pytestconfig.getini(INI_OPTION) or "")
        if ini:
            migrate(Path(pytestconfig.rootpath, ini), db)
        yield db


def migrate(ini: Path, db: Database) -> None:
    """``alembic upgrade heads`` with *ini* on *db* as its owner, grant the runtime role, verify."""
    from alembic import command
    from alembic.config import Config

    if not ini.is_file():
        pytest.fail(f"{INI_OPTION} = {ini}: no such file", pytrace=False)
    config = Config(str(ini))
    config.set_main_option("sqlalchemy.url", db.admin_url.replace("%", "%%"))
    engine = create_engine(db.admin_url)
    try:
        urls = {ADMIN_URL_VARIABLE: db.admin_url, URL_VARIABLE: db.admin_url}
        with _environ(urls), _logging_kept(), engine.begin() as connection:
            config.attributes["connection"] = connection
            config.attributes["runtime_role"] = db.runtime
            command.upgrade(config, "heads")
        with engine.begin() as connection:
            migrated = connection.execute(text("SELECT to_regclass('tenants') IS NOT NULL")).scalar_one()
            if migrated:
                grant_runtime_role(connection, db.runtime)
    finally:
        engine.dispose()
    if not migrated:
        pytest.fail(
            f"{INI_OPTION} = {ini}: `alembic upgrade heads` did not create the tenants table in the "
            f"test database {db.name}, so the env.py of that alembic.ini migrated another database "
            "or left out tenancy's revisions. Make the env.py call "
            "tenancy.migrations.run_migrations(context, target_metadata=...) and list tenancy's "
            "revisions in alembic.ini's version_locations (README: Your own app), "
            'or have it use config.attributes["connection"].',
            pytrace=False,
        )


@contextmanager
def _logging_kept() -> Iterator[None]:
    """Undo what the env.py does to logging: alembic init's calls fileConfig(), which disables
    every logger that exists already (the test session's caplog would go quiet)."""
    loggers = [
        logging.getLogger(),
        *(logging.getLogger(name) for name in list(logging.root.manager.loggerDict)),
    ]
    saved = [(lg, lg.disabled, lg.level, list(lg.handlers), lg.propagate) for lg in loggers]
    try:
        yield
    finally:
        for logger, disabled, level, handlers, propagate in saved:
            logger.disabled, logger.level, logger.handlers, logger.propagate = (
                disabled,
                level,
                handlers,
                propagate,
            )


@contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


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
