"""ORM INSERT/UPDATE statements the guard reads before they run (SQLite: the ORM layer alone).

These are the checks that read what a statement was built with (``values()``, multi-row
``values([...])``, ``from_select()`` names, the FROMs of an UPDATE): each test writes the
statement a careless or hostile caller would, and checks what reaches the table.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import (
    Engine,
    Integer,
    MetaData,
    String,
    create_engine,
    insert,
    inspect,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, aliased, mapped_column

from tenancy import CrossTenantWrite, TenantScoped, TenantSession

T1 = uuid.UUID("11111111-1111-4111-8111-111111111111")
T2 = uuid.UUID("22222222-2222-4222-8222-222222222222")


class _Base(DeclarativeBase):
    metadata = MetaData()


class Note(TenantScoped, _Base):
    __tablename__ = "stmt_notes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    title: Mapped[str] = mapped_column(String)


class Shelf(TenantScoped, _Base):
    __tablename__ = "stmt_shelves"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    label: Mapped[str] = mapped_column(String)


class Setting(_Base):
    """Not tenant-scoped."""

    __tablename__ = "stmt_settings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = create_engine("sqlite://")
    _Base.metadata.create_all(engine)
    with engine.begin() as conn:
        for tenant in (T1, T2):
            conn.execute(
                insert(Note.__table__), [{"instance_id": tenant, "id": i, "title": "n"} for i in (1, 2)]
            )
            conn.execute(insert(Shelf.__table__), [{"instance_id": tenant, "id": 1, "label": tenant.hex[:2]}])
    yield engine
    engine.dispose()


def _rows(engine: Engine, sql: str) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(sql))]


def test_multi_row_values_are_stamped_and_returning_is_kept(engine: Engine) -> None:
    """values([...]) rows without instance_id get the tenant; what was chained (RETURNING) still runs."""
    with TenantSession(engine, instance_id=T1) as session:
        stmt = insert(Note).values([{"id": 10, "title": "a"}, {"id": 11, "title": "b", "instance_id": T1}])
        assert sorted(session.execute(stmt.returning(Note.id)).scalars()) == [10, 11]
        session.commit()
    assert _rows(engine, "SELECT id FROM stmt_notes WHERE id >= 10 ORDER BY id") == [(10,), (11,)]
    assert len(_rows(engine, f"SELECT id FROM stmt_notes WHERE id >= 10 AND instance_id = '{T1.hex}'")) == 2


def test_multi_row_values_naming_another_tenant_write_nothing(engine: Engine) -> None:
    """One row of values([...]) with another tenant's id refuses the whole statement."""
    with TenantSession(engine, instance_id=T1) as session:
        stmt = insert(Note).values([{"id": 10, "title": "a"}, {"id": 11, "title": "b", "instance_id": T2}])
        with pytest.raises(CrossTenantWrite):
            session.execute(stmt)
        session.commit()
    assert _rows(engine, "SELECT id FROM stmt_notes WHERE id >= 10") == []


def test_values_naming_another_tenant_are_refused_whatever_bind_arguments_say(engine: Engine) -> None:
    """The checked entity is the statement's own: a caller's bind_arguments mapper cannot steer it."""
    with TenantSession(engine, instance_id=T1) as session:
        stmt = insert(Note).values(instance_id=T2, id=10, title="x")
        with pytest.raises(CrossTenantWrite):
            session.execute(stmt, bind_arguments={"mapper": inspect(Setting)})
        with pytest.raises(CrossTenantWrite):
            session.execute(update(Note).values(instance_id=T2))
        session.commit()
    assert _rows(engine, "SELECT count(*) FROM stmt_notes WHERE id >= 10") == [(0,)]
    assert _rows(engine, f"SELECT count(*) FROM stmt_notes WHERE instance_id = '{T2.hex}'") == [(2,)]


def test_insert_from_select_takes_the_tenant_from_an_alias_or_a_label_but_not_a_core_column(
    engine: Engine,
) -> None:
    """from_select: an aliased or labelled entity's instance_id is scoped; a Core column is not: refused."""
    names = ["instance_id", "id", "title"]
    other = aliased(Note)
    with TenantSession(engine, instance_id=T1) as session:
        session.execute(
            insert(Note).from_select(
                names, select(other.instance_id, other.id + 10, other.title).where(other.id < 10)
            )
        )
        labelled = select(Note.instance_id.label("owner"), Note.id + 20, Note.title).where(Note.id < 10)
        session.execute(insert(Note).from_select(names, labelled))
        session.execute(
            insert(Note).from_select(names, select(literal(T1), Note.id + 30, Note.title).where(Note.id < 10))
        )
        core = Note.__table__.c
        for source in (
            select(core.instance_id, core.id + 40, core.title),
            select(literal(T2), Note.id + 40, Note.title),
            select(Note.id, Note.id + 40, Note.title),
        ):
            with pytest.raises(CrossTenantWrite):
                session.execute(insert(Note).from_select(names, source))
        session.commit()
    assert _rows(engine, "SELECT instance_id, count(*) FROM stmt_notes WHERE id > 10 GROUP BY 1") == [
        (T1.hex, 6)
    ]


def test_update_from_another_tenant_table_is_steered_only_by_own_rows(engine: Engine) -> None:
    """UPDATE notes ... FROM shelves: the other tenant's shelf rows cannot select the notes to change."""
    with TenantSession(engine, instance_id=T1) as session:
        stmt = update(Note).where(Note.id == Shelf.id, Shelf.label == T2.hex[:2]).values(title="hit")
        session.execute(stmt, execution_options={"synchronize_session": False})
        stmt = update(Note).where(Note.id == Shelf.id, Shelf.label == T1.hex[:2]).values(title="own")
        session.execute(stmt, execution_options={"synchronize_session": False})
        session.commit()
    assert _rows(engine, "SELECT instance_id, title FROM stmt_notes WHERE id = 1 ORDER BY 1") == [
        (T1.hex, "own"),
        (T2.hex, "n"),
    ]
