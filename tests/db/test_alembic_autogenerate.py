"""Autogenerate emits isolation for a new tenant model; upgrade applies it and downgrade removes it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import MetaData, create_engine, inspect, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import tenancy
from tenancy.migrations.environment import TENANCY_VERSIONS
from tenancy.models import NAMING_CONVENTION
from tenancy.testing.postgres import Database
from tests.conftest import ROOT, alembic_config

pytestmark = pytest.mark.postgres


class _Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Widget(tenancy.TenantScoped, _Base):
    __tablename__ = "widgets"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    name: Mapped[str]


tenancy.Tenant.__table__.to_metadata(_Base.metadata)


def _rls(engine, table: str) -> tuple[bool, bool, int] | None:
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT relrowsecurity, relforcerowsecurity,"
                " (SELECT count(*) FROM pg_policy WHERE polrelid = c.oid) FROM pg_class c WHERE relname = :t"
            ),
            {"t": table},
        ).one_or_none()


# A user's env.py, as the README shows it, for this module's models.
USER_ENV = """
from alembic import context

import tenancy.migrations
from tests.db.test_alembic_autogenerate import _Base

tenancy.migrations.run_migrations(context, target_metadata=_Base.metadata)
"""


def test_autogenerate_new_tenant_table_gets_isolation(empty_pg_database: Database, tmp_path: Path) -> None:
    """A new TenantScoped model: the revision enables isolation, the runtime role is confined by it,
    and downgrade removes table and policy (ISOLATION.md 54). The revision lands in the app's own
    versions/ on a branch of its own, and leaves tenancy's tenants table to tenancy's revisions."""
    scripts = tmp_path / "migrations"
    shutil.copytree(ROOT / "migrations", scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "env.py").write_text(USER_ENV)
    cfg = alembic_config(scripts)
    admin = create_engine(empty_pg_database.admin_url)

    def run(fn, *args, **kw):
        with admin.begin() as conn:
            cfg.attributes["connection"] = conn
            cfg.attributes["runtime_role"] = empty_pg_database.runtime
            return fn(cfg, *args, **kw)

    run(command.upgrade, "heads")
    run(command.revision, message="widgets", autogenerate=True, rev_id="0099")
    assert not list(TENANCY_VERSIONS.glob("0099_*")), "the app's revision went into tenancy's package"
    source = next((scripts / "versions").glob("0099_*.py")).read_text()
    assert "down_revision: str | None = None" in source  # a branch of the app's own
    assert "tenants" not in source
    upgrade, downgrade = source.split("def downgrade")
    assert "op.create_table('widgets'" in upgrade or 'op.create_table(\n        "widgets"' in upgrade
    assert "op.enable_tenant_isolation('widgets')" in upgrade
    assert "op.disable_tenant_isolation('widgets')" in downgrade
    assert downgrade.index("disable_tenant_isolation") < downgrade.index("drop_table")

    run(command.upgrade, "heads")
    assert _rls(admin, "widgets") == (True, True, 1)
    # The migration ran as the owner; the app runs as the runtime role and is confined.
    runtime = create_engine(empty_pg_database.runtime_url)
    sessions = tenancy.TenantSessionFactory(runtime, admin_engine=admin)
    a, b = "0b6c2c1e-1111-4111-8111-000000000001", "0b6c2c1e-2222-4222-8222-000000000002"
    for tenant in (a, b):
        with sessions.for_instance(tenant) as session:
            session.add(Widget(id=1, name=f"w-{tenant}"))
            session.commit()
    with sessions.for_instance(a) as session:
        assert session.scalars(select(Widget.name)).all() == [f"w-{a}"]
        assert session.execute(text("SELECT count(*) FROM widgets")).scalar_one() == 1
    with runtime.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM widgets")).scalar_one() == 0

    run(command.downgrade, "0099@base")
    assert "widgets" not in inspect(admin).get_table_names()
    assert "tenants" in inspect(admin).get_table_names()  # tenancy's branch stays
    assert _rls(admin, "widgets") is None
    runtime.dispose()
    admin.dispose()
