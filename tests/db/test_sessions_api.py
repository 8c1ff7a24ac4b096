"""The session factory's contract: ids, admin sessions, the runtime role check, grants."""

from __future__ import annotations

import logging
import uuid

import pytest
from sqlalchemy import create_engine, select, text

import tenancy
from tenancy.commands.main import main
from tenancy.tenants.model import Tenant
from tenancy.tenants.registration import upsert_seen_tenant
from tenancy.testing.postgres import Database
from tests.conftest import create_tenant_table, migrate

A = uuid.UUID("a0000000-0000-4000-8000-00000000000a")


def test_for_instance_accepts_uuid_forms_and_stores_the_uuid(runtime_engine, admin_engine) -> None:
    """A UUID object or any string uuid.UUID() parses gives a session whose info holds the UUID."""
    sessions = tenancy.TenantSessionFactory(runtime_engine, admin_engine=admin_engine)
    for form in (A, str(A), str(A).upper(), A.hex, "{" + str(A) + "}"):
        with sessions.for_instance(form) as session:
            assert session.info["tenancy.instance_id"] == A
            assert session.tenant_id == A
            assert session.execute(text("SELECT current_setting('tenancy.instance_id')")).scalar() == str(A)


def test_admin_needs_a_reason_and_an_admin_engine_and_is_logged(runtime_engine, admin_engine, caplog) -> None:
    """admin() refuses an empty reason or a missing admin engine, and logs the reason."""
    with pytest.raises(tenancy.ConfigurationError):
        tenancy.TenantSessionFactory(runtime_engine).admin(reason="support ticket 1")
    sessions = tenancy.TenantSessionFactory(runtime_engine, admin_engine=admin_engine)
    with pytest.raises(tenancy.ConfigurationError):
        sessions.admin(reason=" ")
    with (
        caplog.at_level(logging.INFO, logger="tenancy.admin"),
        sessions.admin(reason="support ticket 1") as s,
    ):
        s.execute(select(1))
    assert "support ticket 1" in caplog.text


def test_owner_role_as_runtime_engine_is_refused(admin_engine) -> None:
    """A runtime engine connected as the BYPASSRLS owner is refused before a session opens, every time."""
    sessions = tenancy.TenantSessionFactory(admin_engine)
    for _ in range(2):
        with pytest.raises(tenancy.ConfigurationError, match="BYPASSRLS"):
            sessions.for_instance(A)


def test_registration_inserts_once_and_refuses_removed(runtime_engine, admin_engine) -> None:
    """A seen tenant is inserted active; again is a no-op; a removed one is refused and stays removed."""
    tenant = uuid.uuid4()
    sessions = tenancy.TenantSessionFactory(runtime_engine, admin_engine=admin_engine)
    for _ in range(2):
        with sessions.for_instance(tenant) as session, session.begin():
            upsert_seen_tenant(session, tenant, site_id="site-1")
    with sessions.admin(reason="test") as s, s.begin():
        row = s.get(Tenant, tenant)
        assert row is not None and row.status == "active"
        row.status, row.last_synced_at = "removed", row.first_seen_at
    with pytest.raises(tenancy.TenantRemoved), sessions.for_instance(tenant) as session, session.begin():
        upsert_seen_tenant(session, tenant, site_id="site-1")
    with sessions.admin(reason="test") as s:
        row = s.get(Tenant, tenant)
        assert row is not None and row.status == "removed" and row.last_synced_at is not None


@pytest.mark.postgres
def test_grant_command_gives_the_runtime_role_exactly_its_needs(
    empty_pg_database: Database, monkeypatch
) -> None:
    """`tenancy grant` after `alembic upgrade head`: tenants readable only, alembic_version not."""
    admin = create_engine(empty_pg_database.admin_url)
    migrate(admin)
    monkeypatch.setenv("TENANCY_ADMIN_DATABASE_URL", empty_pg_database.admin_url)
    monkeypatch.setenv("DATABASE_URL", empty_pg_database.runtime_url)
    assert main(["grant"]) == 0
    runtime = create_engine(empty_pg_database.runtime_url)
    with runtime.connect() as conn:
        privileges = conn.execute(
            text(
                "SELECT has_table_privilege('tenants', 'SELECT'), has_table_privilege('tenants', 'INSERT'),"
                " has_table_privilege('tenants', 'DELETE'), has_table_privilege('alembic_version', 'SELECT')"
            )
        ).one()
    # tenants: read (its own row, RLS); written only through tenancy.register_tenant.
    assert tuple(privileges) == (True, False, False, False)
    # Tenant tables that later migrations create are granted by op.enable_tenant_isolation;
    # other new tables are not granted at all (no default privileges).
    with admin.begin() as conn:
        create_tenant_table(conn, "later")
        conn.execute(text("CREATE TABLE plain_lookup (id int PRIMARY KEY)"))
    with runtime.connect() as conn:
        assert conn.execute(text("SELECT has_table_privilege('later', 'INSERT')")).scalar() is True
        assert conn.execute(text("SELECT has_table_privilege('plain_lookup', 'SELECT')")).scalar() is False
    assert main(["grant", empty_pg_database.owner]) == 2  # the owner would bypass RLS: refused
    runtime.dispose()
    admin.dispose()


@pytest.fixture
def api_notes(admin_engine) -> str:
    """A small tenant table, isolated like any user's (enable_isolation grants the runtime role)."""
    with admin_engine.begin() as conn:
        create_tenant_table(conn, "api_notes")
    return "api_notes"


def test_rls_write_violation_surfaces_as_cross_tenant_write(runtime_engine, admin_engine, api_notes) -> None:
    """A raw INSERT of another tenant's row, refused by the policy (42501), raises CrossTenantWrite."""
    sessions = tenancy.TenantSessionFactory(runtime_engine, admin_engine=admin_engine)
    other = uuid.uuid4()
    with sessions.for_instance(A) as session:
        with pytest.raises(tenancy.CrossTenantWrite, match="api_notes"):
            session.execute(text("INSERT INTO api_notes (instance_id, id) VALUES (:i, 1)"), {"i": other})
        session.rollback()
    with admin_engine.connect() as conn:
        assert (
            conn.execute(text("SELECT count(*) FROM api_notes WHERE instance_id = :i"), {"i": other}).scalar()
            == 0
        )


def test_duplicate_in_tenant_is_a_domain_error(runtime_engine, admin_engine, api_notes) -> None:
    """Inserting the same per-tenant key twice raises DuplicateInTenant naming the constraint."""
    sessions = tenancy.TenantSessionFactory(runtime_engine, admin_engine=admin_engine)
    tenant = uuid.uuid4()
    insert = text("INSERT INTO api_notes (instance_id, id) VALUES (:i, 1)")
    with sessions.for_instance(tenant) as session:
        session.execute(insert, {"i": tenant})
        session.commit()
        with pytest.raises(tenancy.DuplicateInTenant) as caught:
            session.execute(insert, {"i": tenant})
        assert caught.value.constraint == "pk_api_notes"
