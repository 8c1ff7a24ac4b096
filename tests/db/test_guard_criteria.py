"""The ORM layer alone (SQLite: no RLS) scopes every kind of ORM read and bulk write to the tenant.

Both tenants use the same ids, and one relationship joins on ``folder_id`` only, so any
statement the loader criteria miss returns the other tenant's rows.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import ForeignKey, Integer, MetaData, String, create_engine, delete, exists, select, update
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    aliased,
    deferred,
    foreign,
    joinedload,
    mapped_column,
    relationship,
    selectinload,
    subqueryload,
)

from tenancy import TenantScoped, TenantSession

T1 = uuid.UUID("11111111-1111-4111-8111-111111111111")
T2 = uuid.UUID("22222222-2222-4222-8222-222222222222")


class _Base(DeclarativeBase):
    metadata = MetaData()


class Folder(TenantScoped, _Base):
    __tablename__ = "folders"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String)
    # Joins on folder_id alone: only the loader criteria keep the other tenant's notes out.
    notes: Mapped[list[Note]] = relationship(
        primaryjoin=lambda: Folder.id == foreign(Note.folder_id), viewonly=True, order_by=lambda: Note.id
    )


class Note(TenantScoped, _Base):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    folder_id: Mapped[int] = mapped_column(Integer, ForeignKey("folders.id", use_alter=True))
    title: Mapped[str] = mapped_column(String)
    body: Mapped[str] = deferred(mapped_column(String))
    folder: Mapped[Folder] = relationship(
        primaryjoin=lambda: foreign(Note.folder_id) == Folder.id, viewonly=True
    )


@pytest.fixture
def session():
    engine = create_engine("sqlite://")
    _Base.metadata.create_all(engine)
    with engine.begin() as conn:
        for t in (T1, T2):
            conn.execute(Folder.__table__.insert(), [{"instance_id": t, "id": 1, "name": f"f-{t.hex[:2]}"}])
            conn.execute(
                Note.__table__.insert(),
                [
                    {
                        "instance_id": t,
                        "id": i,
                        "folder_id": 1,
                        "title": f"n{i}-{t.hex[:2]}",
                        "body": t.hex[:2],
                    }
                    for i in (1, 2)
                ],
            )
    with TenantSession(engine, instance_id=T1) as s:
        yield s
    engine.dispose()


MINE = ["n1-11", "n2-11"]


def test_select_entities_columns_aliases_and_joins(session) -> None:
    """Entities, bare columns, aliases and joins see only the tenant's rows."""
    assert [n.title for n in session.scalars(select(Note).order_by(Note.id))] == MINE
    assert session.scalars(select(Note.title).order_by(Note.title)).all() == MINE
    a = aliased(Note)
    assert session.scalars(select(a.title).order_by(a.title)).all() == MINE
    joined = session.execute(select(Folder.name, Note.title).join(Folder.notes).order_by(Note.id)).all()
    assert joined == [("f-11", "n1-11"), ("f-11", "n2-11")]
    assert [n.title for n in session.query(Note).order_by(Note.id)] == MINE


@pytest.mark.parametrize("loader", [None, selectinload, joinedload, subqueryload])
def test_relationship_loads(session, loader) -> None:
    """Lazy, selectin, joined and subquery loads of a tenant-blind relationship stay in the tenant."""
    stmt = select(Folder)
    if loader is not None:
        stmt = stmt.options(loader(Folder.notes))
    folder = session.scalars(stmt).unique().one()
    assert [n.title for n in folder.notes] == MINE
    note = session.scalars(select(Note).where(Note.id == 1)).one()
    assert note.folder is folder


def test_deferred_columns_refresh_and_get(session) -> None:
    """Deferred column loads, refreshes and get() run scoped (and with the tenant parameter)."""
    note = session.scalars(select(Note).where(Note.id == 2)).one()
    assert note.body == "11"
    session.expire(note)
    assert note.title == "n2-11"
    session.refresh(note)
    assert session.get(Note, (T2, 1)) is None
    assert session.get(Note, (T1, 1)).title == "n1-11"


def test_any_has_exists_and_subqueries(session) -> None:
    """.any(), .has(), bare exists() and scalar subqueries are scoped too."""
    assert session.scalars(select(Folder).where(Folder.notes.any(Note.title == "n1-22"))).all() == []
    assert session.scalars(select(Note.id).where(Note.folder.has(Folder.name == "f-22"))).all() == []
    assert session.scalars(select(Folder.id).where(exists().where(Note.title == "n1-22"))).all() == []
    counted = select(Note.id).where(Note.title.like("n1-%")).scalar_subquery()
    assert session.scalars(select(Note.title).where(Note.id == counted)).all() == ["n1-11"]


def test_bulk_update_and_delete_by_criteria(session) -> None:
    """ORM update() and delete() with criteria touch only the tenant's rows."""
    session.execute(update(Note).values(title="changed"))
    session.execute(delete(Folder))
    session.commit()
    with session.bind.connect() as conn:  # unscoped view of the table
        rows = conn.execute(select(Note.__table__.c.instance_id, Note.__table__.c.title)).all()
        folders = conn.execute(select(Folder.__table__.c.instance_id)).scalars().all()
    assert sorted(title for t, title in rows if t == T1) == ["changed", "changed"]
    assert sorted(title for t, title in rows if t == T2) == ["n1-22", "n2-22"]
    assert folders == [T2]
