"""Test helpers to prove isolation of *your* models (also a pytest plugin: ``tenancy.testing.plugin``).

>>> def test_notes_are_isolated(tenancy_sessions):
...     assert_tenant_isolation(tenancy_sessions, lambda: Note(title="same"))

Fixtures from the plugin (loaded automatically once tenancy is installed):
``tenancy_database`` (a fresh PostgreSQL database with an owner and a runtime role, migrated
with your ``alembic.ini`` if you set ``tenancy_alembic_ini``), ``tenancy_admin_engine``,
``tenancy_runtime_engine`` and ``tenancy_sessions``.
"""

from __future__ import annotations

from tenancy.testing.checks import assert_database_isolated, assert_tenant_isolation
from tenancy.testing.postgres import Database, fresh_database, server_url

__all__ = [
    "Database",
    "assert_database_isolated",
    "assert_tenant_isolation",
    "fresh_database",
    "server_url",
]
