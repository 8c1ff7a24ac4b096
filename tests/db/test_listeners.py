"""tenancy listens only on what it was given: engines, tables and metadata of others stay untouched.

An application that imports tenancy keeps its other engines (a reporting database, another
library's) and its other tables exactly as SQLAlchemy made them: no tenancy listener runs on
their connections, pools or DDL.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, Uuid, create_engine, event
from sqlalchemy.events import ConnectionEvents, DDLEvents, DialectEvents, PoolEvents
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tenancy import TenantScoped, TenantSessionFactory, mark_tenant_table
from tenancy.postgres import isolation


def _tenancy_listeners(dispatch: Any, events: type) -> list[str]:
    """The tenancy functions among *dispatch*'s listeners (the class-wide ones included)."""
    found = []
    for name in (n for n in vars(events) if not n.startswith("_")):
        for fn in getattr(dispatch, name, ()):
            target = getattr(fn, "__wrapped__", fn)
            module = getattr(target, "__module__", "") or ""
            if module.startswith("tenancy"):
                found.append(f"{name}: {module}.{getattr(target, '__name__', target)}")
    return found


class _Base(DeclarativeBase):
    metadata = MetaData()


class Owned(TenantScoped, _Base):
    __tablename__ = "listener_owned"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)


def test_tables_and_metadata_not_given_to_tenancy_get_no_listener() -> None:
    """Other tables (even on the same metadata as a tenant table) get no DDL listener from tenancy."""
    others = MetaData()
    plain = Table("listener_plain", others, Column("id", Integer, primary_key=True))
    beside = Table("listener_beside", _Base.metadata, Column("id", Integer, primary_key=True))
    engine = create_engine("sqlite://")
    others.create_all(engine)
    for item in (plain, others, beside, _Base.metadata):
        assert _tenancy_listeners(item.dispatch, DDLEvents) == [], item
    engine.dispose()


def test_tenant_tables_carry_their_own_create_listener() -> None:
    """A TenantScoped table and a mark_tenant_table() one get RLS from create_all: the listener is theirs."""
    marked = mark_tenant_table(
        Table("listener_marked", MetaData(), Column("instance_id", Uuid(), primary_key=True))
    )
    for table in (Owned.__table__, marked):
        assert event.contains(table, "after_create", isolation._isolate_created_table)
    mark_tenant_table(marked)  # marking again does not add a second listener
    copy = Owned.__table__.to_metadata(MetaData())  # a copy keeps the mark and the listener
    for table in (marked, copy):
        assert _tenancy_listeners(table.dispatch, DDLEvents) == [
            "after_create: tenancy.postgres.isolation._isolate_created_table"
        ]


def test_an_engine_not_given_to_tenancy_gets_no_listener() -> None:
    """A factory's engine gets tenancy's listeners; another engine in the same process gets none."""
    given = create_engine("sqlite://")
    other = create_engine("sqlite://")
    with pytest.warns(Warning):  # SQLite: only the ORM layer isolates (TenancyWarning)
        TenantSessionFactory(given, admin_engine=given)
    with other.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
    assert _tenancy_listeners(other.dispatch, ConnectionEvents) == []
    # Dialect events (handle_error, do_connect...) live on the engine's own dialect.
    assert _tenancy_listeners(other.dialect.dispatch, DialectEvents) == []
    assert _tenancy_listeners(given.dialect.dispatch, DialectEvents) != []  # the given one does get them
    given.dispose()
    other.dispose()


def test_the_pool_of_an_engine_not_given_to_tenancy_gets_no_listener() -> None:
    """No pool-wide listener of tenancy reaches another engine's pool."""
    other = create_engine("sqlite://")
    assert _tenancy_listeners(other.pool.dispatch, PoolEvents) == []
    other.dispose()


@pytest.mark.postgres
def test_create_all_isolates_a_tenant_table_in_a_fresh_process(pg_database: Any) -> None:
    """`import tenancy` loads names lazily; a model of yours made with `tenancy.Base` and
    `tenancy.TenantScoped` still gets row-level security from `create_all` and nothing else."""
    import subprocess
    import sys

    probe = (
        "import sys, tenancy, sqlalchemy as sa\n"
        "class Memo(tenancy.TenantScoped, tenancy.Base):\n"
        "    __tablename__ = 'lazy_memos'\n"
        "    id = sa.orm.mapped_column(sa.Integer, primary_key=True)\n"
        "engine = sa.create_engine(sys.argv[1])\n"
        "tenancy.Base.metadata.create_all(engine, tables=[Memo.__table__])\n"
        "with engine.connect() as c:\n"
        '    print(c.execute(sa.text("SELECT relrowsecurity AND relforcerowsecurity FROM pg_class"\n'
        "                            \" WHERE oid = 'lazy_memos'::regclass\")).scalar_one())\n"
        "    c.execute(sa.text('DROP TABLE lazy_memos'))\n"
        "    c.commit()\n"
    )
    answer = subprocess.run(
        [sys.executable, "-c", probe, pg_database.admin_url], capture_output=True, text=True, check=True
    )
    assert answer.stdout.strip() == "True"
