"""Test helpers to prove isolation of *your* models (also a pytest plugin: ``tenancy.testing.plugin``).

>>> def test_notes_are_isolated(tenancy_sessions):
...     assert_tenant_isolation(tenancy_sessions, lambda: Note(title="same"))

Fixtures from the plugin (loaded automatically once tenancy is installed):
``tenancy_database`` (a fresh PostgreSQL database with an owner and a runtime role, migrated
with your ``alembic.ini`` if you set ``tenancy_alembic_ini``), ``tenancy_admin_engine``,
``tenancy_runtime_engine`` and ``tenancy_sessions``. For web apps: :func:`serve_asgi` (your
FastAPI app on a free port, over real HTTP) and :class:`WebhookSigner` (signed Wix webhooks).
"""

from __future__ import annotations

from tenancy.testing.checks import assert_database_isolated, assert_tenant_isolation
from tenancy.testing.postgres import Database, fresh_database, server_url
from tenancy.testing.web import WebhookSigner, serve_asgi

__all__ = [
    "Database",
    "WebhookSigner",
    "assert_database_isolated",
    "assert_tenant_isolation",
    "fresh_database",
    "serve_asgi",
    "server_url",
]
