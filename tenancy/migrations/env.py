"""Alembic environment of tenancy's own migrations: the ``tenants`` table, nothing of yours."""

from __future__ import annotations

from alembic import context

from tenancy.migrations.environment import run_library_migrations

run_library_migrations(context)
