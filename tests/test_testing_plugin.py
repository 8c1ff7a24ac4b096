"""The pytest plugin and assertions users run to prove isolation of their own models."""

from __future__ import annotations

import pytest
from sqlalchemy import MetaData, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import tenancy
from tenancy.models import NAMING_CONVENTION
from tenancy.postgres.roles import grant_runtime_role
from tenancy.testing import assert_database_isolated, assert_tenant_isolation

pytestmark = pytest.mark.postgres


class _Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Gadget(tenancy.TenantScoped, _Base):
    __tablename__ = "gadgets"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    name: Mapped[str]


class Leaky(tenancy.TenantScoped, _Base):
    __tablename__ = "leaky"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)


@pytest.fixture(scope="module")
def tables(tenancy_admin_engine, tenancy_database):
    _Base.metadata.create_all(tenancy_admin_engine)
    tenancy.Base.metadata.create_all(tenancy_admin_engine, tables=[tenancy.Tenant.__table__])
    with tenancy_admin_engine.begin() as conn:
        grant_runtime_role(conn, tenancy_database.runtime)
    return _Base.metadata


def test_a_tenant_model_passes_the_isolation_assertion(tables, tenancy_sessions) -> None:
    """assert_tenant_isolation passes for a model created with create_all (RLS applied)."""
    assert_tenant_isolation(tenancy_sessions, lambda: Gadget(id=1, name="same"))


def test_the_assertion_fails_when_rls_is_missing(tables, tenancy_sessions, tenancy_admin_engine) -> None:
    """With the policy dropped, the raw-SQL check of the assertion fails: it can catch a leak."""
    with tenancy_admin_engine.begin() as conn:
        tenancy.disable_isolation(conn, "leaky")
    with pytest.raises(AssertionError, match="RLS missing"):
        assert_tenant_isolation(tenancy_sessions, lambda: Leaky(id=1))


def test_database_assertion_reports_findings(tables, tenancy_admin_engine, tenancy_database) -> None:
    """assert_database_isolated fails listing the findings of `tenancy check`."""
    with tenancy_admin_engine.begin() as conn:
        conn.execute(text("ALTER TABLE gadgets NO FORCE ROW LEVEL SECURITY"))
    try:
        with pytest.raises(AssertionError, match="gadgets: row-level security is not forced"):
            assert_database_isolated(tenancy_admin_engine, runtime_role=tenancy_database.runtime)
    finally:
        with tenancy_admin_engine.begin() as conn:
            conn.execute(text("ALTER TABLE gadgets FORCE ROW LEVEL SECURITY"))
