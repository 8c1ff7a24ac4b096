"""Two tenant tables: notebooks, and notes that belong to one (a composite foreign key)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, Identity, String, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

import tenancy


class Notebook(tenancy.TenantScoped, tenancy.Base):
    """A named notebook of one installation (primary key: instance_id, id)."""

    __tablename__ = "notebooks"
    __table_args__ = (UniqueConstraint("instance_id", "name"),)  # unique per tenant, no oracle

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    notes: Mapped[list[Note]] = relationship(back_populates="notebook", cascade="all, delete-orphan")


class Note(tenancy.TenantScoped, tenancy.Base):
    """A note in a notebook: (instance_id, notebook_id) references (instance_id, id)."""

    __tablename__ = "notes"
    __table_args__ = (tenancy.tenant_foreign_key("notebook_id", "notebooks.id", ondelete="CASCADE"),)

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    notebook_id: Mapped[int]
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    notebook: Mapped[Notebook] = relationship(back_populates="notes")


__all__ = ["Note", "Notebook"]
