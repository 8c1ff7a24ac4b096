"""Alembic environment of the notes app: its tables and tenancy's.

The URL comes from ``TENANCY_ADMIN_DATABASE_URL``, else ``DATABASE_URL``, else the SQLite
default: migrations run as the owner role. A connection handed in through
``config.attributes["connection"]`` is used as is (tests migrate their own databases).
If ``TENANCY_RUNTIME_ROLE`` names a role, it is granted what tenant sessions need
afterwards (``tenancy grant`` does the same on demand).
"""

from __future__ import annotations

import os

import notes_app.models  # noqa: F401  (registers the notes tables on tenancy.Base)
from alembic import context
from sqlalchemy import Connection, create_engine, pool

import tenancy
import tenancy.alembic_ops
from tenancy.db.roles import grant_runtime_role

config = context.config
# Your models' metadata (tenancy.Base.metadata holds tenancy.Tenant and every model built on
# tenancy.Base); tools and tests may hand in another through config.attributes.
target_metadata = config.attributes.get("target_metadata", tenancy.Base.metadata)


def _url() -> str:
    settings = tenancy.Settings.from_env()
    return settings.admin_database_url


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        process_revision_directives=tenancy.alembic_ops.writer,
        compare_type=True,
        # SQLite cannot ALTER constraints in place; batch mode rebuilds tables there.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
        role = config.attributes.get("runtime_role") or os.environ.get("TENANCY_RUNTIME_ROLE")
        if role and connection.dialect.name == "postgresql":
            grant_runtime_role(connection, role)


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
