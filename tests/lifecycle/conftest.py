"""A migrated database of its own with the lifecycle test schema (tables of other tests would
otherwise be tenant tables here too)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text

from tenancy.testing.postgres import Database, fresh_database
from tests.conftest import migrate
from tests.lifecycle.schema import TABLES, create_schema


@pytest.fixture(scope="module")
def lifecycle_db(pg_server: str) -> Iterator[Database]:
    """A fresh migrated database with the schema of :mod:`tests.lifecycle.schema`."""
    with fresh_database() as db:
        engine = create_engine(db.admin_url)
        migrate(engine, runtime_role=db.runtime)
        with engine.begin() as conn:
            create_schema(conn)
        engine.dispose()
        yield db


@pytest.fixture
def admin(lifecycle_db: Database) -> Iterator[Engine]:
    """The owner role's engine; every test starts with empty tables."""
    engine = create_engine(lifecycle_db.admin_url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)}, tenants"))
    yield engine
    engine.dispose()
