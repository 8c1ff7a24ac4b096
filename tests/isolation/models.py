"""Test models on their own declarative base (``tenancy.Base`` stays equal to the migrations).

Every table's primary key is ``(instance_id, id)`` with explicit ids, so tenants A and B can
hold rows with the same ids, names and slugs. References between tenant tables are
composite foreign keys (``tenant_foreign_key``), except ``Folder.loose_notes``: a
relationship deliberately declared on ``id`` alone, the way a careless model would, so the
ORM guard (not the key structure) is what keeps other tenants out of it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import Column, ForeignKeyConstraint, Integer, MetaData, String, Table, UniqueConstraint, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, foreign, mapped_column, relationship, remote

from tenancy import TenantScoped, mark_tenant_table, tenant_foreign_key
from tenancy.models import NAMING_CONVENTION


class IsoBase(DeclarativeBase):
    """Declarative base of the isolation battery's models."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


note_tags = mark_tenant_table(
    Table(
        "iso_note_tags",
        IsoBase.metadata,
        Column("instance_id", Uuid(), primary_key=True),
        Column("note_id", Integer, primary_key=True),
        Column("tag_id", Integer, primary_key=True),
        ForeignKeyConstraint(
            ["instance_id", "note_id"], ["iso_notes.instance_id", "iso_notes.id"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(
            ["instance_id", "tag_id"], ["iso_tags.instance_id", "iso_tags.id"], ondelete="CASCADE"
        ),
    )
)


class Folder(TenantScoped, IsoBase):
    """A folder; folders nest (self-referential composite FK) and slugs are unique per tenant."""

    __tablename__ = "iso_folders"
    __table_args__ = (
        tenant_foreign_key("parent_id", "iso_folders.id", ondelete="CASCADE"),
        UniqueConstraint("instance_id", "slug"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    slug: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(64))
    parent_id: Mapped[int | None]

    parent: Mapped[Folder | None] = relationship(
        primaryjoin=lambda: (
            (remote(Folder.instance_id) == Folder.instance_id)
            & (remote(Folder.id) == foreign(Folder.parent_id))
        ),
        back_populates="children",
    )
    children: Mapped[list[Folder]] = relationship(
        primaryjoin=lambda: (
            (remote(Folder.instance_id) == Folder.instance_id)
            & (foreign(remote(Folder.parent_id)) == Folder.id)
        ),
        back_populates="parent",
    )
    notes: Mapped[list[Note]] = relationship(
        back_populates="folder",
        cascade="all, delete-orphan",
        primaryjoin=lambda: (Note.instance_id == Folder.instance_id) & (foreign(Note.folder_id) == Folder.id),
        order_by=lambda: Note.id,
    )
    # Joined on id alone, on purpose: only the ORM guard keeps B's notes out of it.
    loose_notes: Mapped[list[Note]] = relationship(
        primaryjoin=lambda: foreign(Note.folder_id) == Folder.id,
        viewonly=True,
        order_by=lambda: Note.id,
    )


class Note(TenantScoped, IsoBase):
    """A note in a folder (composite FK, ON DELETE CASCADE), with tags through ``iso_note_tags``."""

    __tablename__ = "iso_notes"
    __table_args__ = (tenant_foreign_key("folder_id", "iso_folders.id", ondelete="CASCADE"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    folder_id: Mapped[int]
    title: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(String(200), default="")

    folder: Mapped[Folder] = relationship(
        back_populates="notes",
        lazy="joined",
        primaryjoin=lambda: (Note.instance_id == Folder.instance_id) & (foreign(Note.folder_id) == Folder.id),
    )
    # Joined on id alone, on purpose (see Folder.loose_notes): the many-to-one cannot use get().
    loose_folder: Mapped[Folder | None] = relationship(
        primaryjoin=lambda: foreign(Note.folder_id) == Folder.id, viewonly=True
    )
    tags: Mapped[list[Tag]] = relationship(
        secondary=note_tags,
        primaryjoin=lambda: (Note.instance_id == note_tags.c.instance_id) & (Note.id == note_tags.c.note_id),
        secondaryjoin=lambda: (Tag.instance_id == note_tags.c.instance_id) & (Tag.id == note_tags.c.tag_id),
        back_populates="notes",
        order_by=lambda: Tag.id,
    )


class Tag(TenantScoped, IsoBase):
    """A tag, linked to notes many-to-many."""

    __tablename__ = "iso_tags"
    __table_args__ = (UniqueConstraint("instance_id", "label"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    label: Mapped[str] = mapped_column(String(64))

    notes: Mapped[list[Note]] = relationship(
        secondary=note_tags,
        primaryjoin=lambda: (Tag.instance_id == note_tags.c.instance_id) & (Tag.id == note_tags.c.tag_id),
        secondaryjoin=lambda: (
            (Note.instance_id == note_tags.c.instance_id) & (Note.id == note_tags.c.note_id)
        ),
        back_populates="tags",
        order_by=lambda: Note.id,
    )


class Item(TenantScoped, IsoBase):
    """Base of a single-table-inheritance hierarchy (``kind`` discriminates)."""

    __tablename__ = "iso_items"
    __mapper_args__: ClassVar[dict[str, Any]] = {"polymorphic_on": "kind", "polymorphic_identity": "item"}

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(64))


class Task(Item):
    """An item that is a task."""

    __mapper_args__: ClassVar[dict[str, Any]] = {"polymorphic_identity": "task"}


class Event(Item):
    """An item that is an event."""

    __mapper_args__: ClassVar[dict[str, Any]] = {"polymorphic_identity": "event"}


TENANT_TABLES = ("iso_folders", "iso_notes", "iso_tags", "iso_note_tags", "iso_items")

# Scenario 55: a view over a tenant table that runs with the caller's rights (and RLS).
VIEW_SQL = (
    "CREATE VIEW iso_note_titles WITH (security_invoker = true) AS "
    "SELECT instance_id, id, title FROM iso_notes"
)
# A SECURITY INVOKER function over a tenant table: RLS applies as for the caller.
FUNCTION_SQL = (
    "CREATE FUNCTION iso_note_count() RETURNS bigint LANGUAGE sql STABLE SECURITY INVOKER "
    "AS $$ SELECT count(*) FROM iso_notes $$"
)
