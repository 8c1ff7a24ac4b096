"""`tenancy check` finds what would break isolation on a live database, and passes a clean one."""

from __future__ import annotations

import json

import psycopg
import pytest
from sqlalchemy import create_engine, text

from tenancy.commands.main import main
from tenancy.errors import ConfigurationError
from tenancy.postgres.audit import audit
from tenancy.postgres.isolation import enable_isolation, isolation_statements
from tenancy.testing.postgres import Database, server_url
from tests.conftest import migrate

pytestmark = pytest.mark.postgres


# An app's tenant table, as its migration leaves it (isolated, key led by instance_id).
APP_TABLE = "CREATE TABLE items (instance_id uuid NOT NULL, id int NOT NULL, PRIMARY KEY (instance_id, id))"


@pytest.fixture
def db(unmigrated: Database) -> Database:
    engine = create_engine(unmigrated.admin_url)
    with engine.begin() as conn:
        conn.execute(text(APP_TABLE))
        enable_isolation(conn, "items")  # also creates the tenancy schema's binding objects
    migrate(engine, runtime_role=unmigrated.runtime)
    engine.dispose()
    return unmigrated


@pytest.fixture
def unmigrated(empty_pg_database: Database, monkeypatch) -> Database:
    monkeypatch.setenv("TENANCY_ADMIN_DATABASE_URL", empty_pg_database.admin_url)
    monkeypatch.setenv("DATABASE_URL", empty_pg_database.runtime_url)
    return empty_pg_database


def _audit(db: Database, role: str | None = None) -> list[str]:
    engine = create_engine(db.admin_url)
    try:
        with engine.connect() as conn:
            return [str(f) for f in audit(conn, runtime_role=role or db.runtime)]
    finally:
        engine.dispose()


def _owner_sql(db: Database, *statements: str) -> None:
    engine = create_engine(db.admin_url)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    engine.dispose()


def test_a_migrated_database_passes(db: Database, capsys) -> None:
    """After `alembic upgrade heads` with the runtime role granted, the audit is clean (exit 0)."""
    assert _audit(db) == []
    assert main(["check"]) == 0
    assert "ok" in capsys.readouterr().out


def test_a_new_table_without_a_policy_is_a_finding(db: Database, monkeypatch, capsys) -> None:
    """A tenant table added without enable_isolation fails the check (scenario 53), exit 1."""
    _owner_sql(
        db, "CREATE TABLE notes (instance_id uuid NOT NULL, id int NOT NULL, PRIMARY KEY (instance_id, id))"
    )
    found = _audit(db)
    assert any("public.notes: row-level security is not enabled" in f for f in found)
    assert any("public.notes: row-level security is not forced" in f for f in found)
    assert any("public.notes: has no tenancy_tenant_isolation policy" in f for f in found)
    assert main(["check", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["findings"]


def test_enabled_but_not_forced_is_a_finding(db: Database) -> None:
    """NO FORCE lets the owner skip the policy: reported."""
    _owner_sql(db, "ALTER TABLE tenants NO FORCE ROW LEVEL SECURITY")
    assert _audit(db) == ["rls: public.tenants: row-level security is not forced (the owner skips it)"]


def test_an_extra_permissive_policy_is_a_finding(db: Database) -> None:
    """A second permissive policy is OR-ed with ours and widens access: reported."""
    _owner_sql(db, "CREATE POLICY open_all ON tenants USING (true)")
    assert _audit(db) == ["rls: public.tenants: extra permissive policy 'open_all' widens access"]


def test_keys_that_do_not_lead_with_instance_id_are_findings(db: Database) -> None:
    """Single-column PKs, uniques and FKs on tenant tables are reported (existence oracles)."""
    _owner_sql(
        db,
        "CREATE TABLE folders (instance_id uuid NOT NULL, id int PRIMARY KEY, slug text UNIQUE)",
        "CREATE TABLE notes (instance_id uuid NOT NULL, id int NOT NULL,"
        " folder_id int REFERENCES folders (id), PRIMARY KEY (instance_id, id))",
        "CREATE UNIQUE INDEX notes_by_id ON notes (id)",
    )
    for table in ("folders", "notes"):
        _owner_sql(db, *isolation_statements(table))
    found = _audit(db)
    assert "key: public.folders.folders_pkey: primary key does not lead with instance_id" in found
    assert "key: public.folders.folders_slug_key: unique constraint does not lead with instance_id" in found
    assert (
        "key: public.notes.notes_folder_id_fkey: foreign key to folders does not carry instance_id" in found
    )
    assert "key: public.notes.notes_by_id: unique index does not lead with instance_id" in found


def test_privileged_runtime_roles_are_findings(db: Database) -> None:
    """The owner (BYPASSRLS, owns tables) as runtime role is reported; so is membership in it."""
    found = _audit(db, role=db.owner)
    assert any("has BYPASSRLS" in f for f in found)
    assert any("owns public.tenants" in f for f in found)

    with psycopg.connect(server_url(), autocommit=True) as conn:
        conn.execute(f'GRANT "{db.owner}" TO "{db.runtime}"')
    try:
        assert any(f"can SET ROLE {db.owner}" in f for f in _audit(db))
    finally:
        with psycopg.connect(server_url(), autocommit=True) as conn:
            conn.execute(f'REVOKE "{db.owner}" FROM "{db.runtime}"')


def test_a_view_that_is_not_security_invoker_is_a_finding(db: Database) -> None:
    """A view over tenant tables reads as its owner unless security_invoker: reported (scenario 55)."""
    _owner_sql(db, "CREATE VIEW tenant_sites AS SELECT instance_id, site_url FROM tenants")
    assert (
        "view: public.tenant_sites: reads tenant tables but is not security_invoker (reads as its owner)"
        in _audit(db)
    )
    _owner_sql(db, "ALTER VIEW tenant_sites SET (security_invoker = true)")
    assert not [f for f in _audit(db) if f.startswith("view:")]


def test_an_unmigrated_database_cannot_be_audited(unmigrated: Database, capsys) -> None:
    """No tenants table: not a clean audit (a false pass) but exit 2, one line saying to migrate."""
    with pytest.raises(ConfigurationError, match="no tenants table: the database is not migrated"):
        _audit(unmigrated)
    assert main(["check"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run `alembic upgrade heads`" in err


def test_a_database_without_tenant_tables_cannot_be_audited(unmigrated: Database, capsys) -> None:
    """tenancy's tables alone (the app's migrations not run): nothing to audit, exit 2."""
    engine = create_engine(unmigrated.admin_url)
    migrate(engine, runtime_role=unmigrated.runtime)
    engine.dispose()
    assert main(["check"]) == 2
    err = capsys.readouterr().err
    assert "no tenant tables (tables with an instance_id column) besides tenants" in err
