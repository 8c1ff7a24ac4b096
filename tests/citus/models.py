"""The Citus tests' tenant models: a parent and a child table, ids of the two types that work.

``Identity()`` on a plain ``int`` fails on workers (Citus: ``nextval(sequence) calls in worker
nodes are not supported for column defaults of type int or smallint``); a ``bigint`` identity
and a client-side UUID both work, so the folders use one and the notes the other.
"""

from __future__ import annotations

import uuid

from sqlalchemy import BigInteger, ForeignKeyConstraint, Identity, MetaData, String, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import tenancy
from tenancy import TenantScoped, tenant_foreign_key
from tenancy.models import NAMING_CONVENTION


class CitusBase(DeclarativeBase):
    """The models' own base; ``tenants`` is copied in so autogenerate leaves it alone."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


tenancy.Tenant.__table__.to_metadata(CitusBase.metadata)


class Folder(TenantScoped, CitusBase):
    """The parent table: a bigint identity id, a foreign key to the tenant's ``tenants`` row."""

    __tablename__ = "folders"
    __table_args__ = (ForeignKeyConstraint(["instance_id"], ["tenants.instance_id"], ondelete="CASCADE"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))


class Note(TenantScoped, CitusBase):
    """The child table: a UUID id, a composite foreign key to its folder."""

    __tablename__ = "notes"
    __table_args__ = (tenant_foreign_key("folder_id", "folders.id", ondelete="CASCADE"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=uuid.uuid4)
    folder_id: Mapped[int] = mapped_column(BigInteger)
    title: Mapped[str] = mapped_column(String(128))
