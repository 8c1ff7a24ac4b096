"""The per-row guard: a row of another tenant that reaches a tenant session is refused at load."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

from tenancy import Base, CrossTenantAccess, Tenant, TenantSession
from tenancy.orm.guard import TENANT_PARAM

T1 = uuid.UUID("11111111-1111-4111-8111-111111111111")
T2 = uuid.UUID("22222222-2222-4222-8222-222222222222")


@pytest.fixture
def engine():
    # SQLite: no row-level security, so an ORM query built on text() really returns every row.
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        s.add_all([Tenant(instance_id=T1), Tenant(instance_id=T2)])
        s.commit()
    yield engine
    engine.dispose()


def test_a_foreign_row_from_text_is_refused(engine) -> None:
    """select().from_statement(text()) escapes loader criteria; the load check still refuses."""
    with TenantSession(engine, instance_id=T1) as s, pytest.raises(CrossTenantAccess, match="another tenant"):
        s.scalars(select(Tenant).from_statement(text("SELECT * FROM tenants"))).all()


def test_own_rows_load_and_refresh(engine) -> None:
    """The tenant's own row loads, and refreshes (populate_existing) pass the check too."""
    with TenantSession(engine, instance_id=T1) as s:
        stmt = select(Tenant).from_statement(text("SELECT * FROM tenants WHERE instance_id = :t"))
        row = s.scalars(stmt, {"t": T1.hex}).one()
        assert row.instance_id == T1
        s.scalars(stmt.execution_options(populate_existing=True), {"t": T1.hex}).one()
        assert s.scalars(select(Tenant)).all() == [row]


def test_a_callers_parameter_cannot_override_the_tenant(engine) -> None:
    """Passing tenancy_instance_id as a statement parameter does not change the scoped tenant."""
    with TenantSession(engine, instance_id=T1) as s:
        rows = s.scalars(select(Tenant), {TENANT_PARAM: T2}).all()
        assert [r.instance_id for r in rows] == [T1]
