"""tenancy's frozen revisions build exactly the schema the library builds today.

The revisions are SQL text written out when they were made (no import of tenancy), so nothing
keeps them in step with the library by construction: this test does. It fails when someone
edits the model (``tenancy/tenants/model.py``), the binding SQL (``tenancy/postgres/binding.py``)
or the policy (``tenancy/postgres/isolation.py``) without adding a frozen revision that makes
the same change, and when a revision is edited to differ from the library.

Database A: ``alembic upgrade heads``. Database B: what the library creates by itself, the
``tenants`` table by ``create_all`` (whose ``after_create`` puts it under isolation, which
creates the ``tenancy`` schema, its functions and a key). Both are compared through the
catalog: columns, constraints, indexes (with partial-index predicates, which Alembic's compare
skips), function definitions (``pg_get_functiondef``) and privileges, row-level security and
policy expressions.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, MetaData, create_engine, text

import tenancy.postgres.isolation  # noqa: F401  (registers the after_create isolation listener)
from tenancy.models import NAMING_CONVENTION
from tenancy.tenants.model import Tenant
from tenancy.testing.postgres import Database, fresh_database
from tests.conftest import migrate

pytestmark = pytest.mark.postgres

SCHEMAS = ("public", "tenancy")

CATALOG: dict[str, str] = {
    "columns": """
        SELECT table_schema, table_name, ordinal_position, column_name, data_type,
               character_maximum_length, is_nullable, column_default
        FROM information_schema.columns
        WHERE table_schema IN ('public', 'tenancy') AND table_name <> 'alembic_version'
        ORDER BY 1, 2, 3""",
    "constraints": """
        SELECT n.nspname, c.relname, k.conname, k.contype, pg_get_constraintdef(k.oid)
        FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname IN ('public', 'tenancy') AND c.relname <> 'alembic_version'
        ORDER BY 1, 2, 3""",
    "indexes": """
        SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes
        WHERE schemaname IN ('public', 'tenancy') AND tablename <> 'alembic_version'
        ORDER BY 1, 2, 3""",
    "functions": """
        SELECT p.proname, pg_get_function_identity_arguments(p.oid), pg_get_functiondef(p.oid),
               replace(p.proacl::text, r.rolname, 'OWNER')
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_roles r ON r.oid = p.proowner
        WHERE n.nspname = 'tenancy' ORDER BY 1, 2""",
    "relations": """
        SELECT n.nspname, c.relname, c.relkind, c.relrowsecurity, c.relforcerowsecurity,
               replace(coalesce(c.relacl::text, ''), r.rolname, 'OWNER')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_roles r ON r.oid = c.relowner
        WHERE n.nspname IN ('public', 'tenancy') AND c.relname NOT LIKE 'alembic_version%'
        ORDER BY 1, 2""",
    "policies": """
        SELECT schemaname, tablename, policyname, permissive, roles::text, cmd, qual, with_check
        FROM pg_policies WHERE schemaname IN ('public', 'tenancy') ORDER BY 1, 2, 3""",
    "schemas": """
        SELECT n.nspname, replace(coalesce(n.nspacl::text, ''), r.rolname, 'OWNER')
        FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner
        WHERE n.nspname = 'tenancy'""",
    "keys": """
        SELECT key_id, length(key), length(ipad), length(opad), retired_at IS NULL
        FROM tenancy.binding_keys ORDER BY 1""",
}


def _catalog(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {name: [tuple(row) for row in conn.execute(text(sql))] for name, sql in CATALOG.items()}


@pytest.fixture
def library_built(pg_server: str) -> Iterator[Engine]:
    """A fresh database where the library itself created tenants and the binding (no Alembic)."""
    with fresh_database() as db:
        engine = create_engine(db.admin_url)
        with engine.begin() as conn:
            Tenant.__table__.create(conn)
        yield engine
        engine.dispose()


def test_the_migrated_schema_equals_what_the_library_creates(
    empty_pg_database: Database, library_built: Engine
) -> None:
    """`alembic upgrade heads` and the library's own DDL leave the same catalog: a change to the
    model, binding.py or isolation.py needs a new frozen revision (this fails until it exists)."""
    migrated = create_engine(empty_pg_database.admin_url)
    migrate(migrated, "heads")
    try:
        found, expected = _catalog(migrated), _catalog(library_built)
    finally:
        migrated.dispose()
    for name in CATALOG:
        assert found[name] == expected[name], f"{name}: the frozen migration and the library differ"
    assert [row[0] for row in found["functions"]] == [
        "current_instance_id",
        "register_tenant",
        "session_state",
    ]
    assert found["keys"] == [(1, 32, 64, 64, True)]


def test_alembic_compare_finds_no_difference_with_the_tenant_model(empty_pg_database: Database) -> None:
    """Alembic's autogenerate compare (types, defaults, constraints, indexes) of the migrated
    ``tenants`` table against ``Tenant``: nothing to generate."""
    engine = create_engine(empty_pg_database.admin_url)
    migrate(engine, "heads")
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    Tenant.__table__.to_metadata(metadata)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "compare_type": True,
                    "compare_server_default": True,
                    "include_name": lambda name, type_, parent: type_ != "table" or name == "tenants",
                },
            )
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()
