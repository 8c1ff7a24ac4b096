"""The declarative vocabulary every layer shares: the base, the tenant-scoped mixin, tenant tables.

The ORM layer (:mod:`tenancy.orm`) and the database layer (:mod:`tenancy.postgres`) both ask this
module which tables are tenant tables and which column carries the tenant.
"""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    JSON,
    ForeignKeyConstraint,
    MetaData,
    Table,
    Uuid,
    event,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, Mapper, mapped_column

from tenancy.errors import ConfigurationError

__all__ = [
    "TENANTS_TABLE",
    "TENANT_COLUMN",
    "TENANT_TABLE_INFO_KEY",
    "Base",
    "TenantScoped",
    "is_tenant_table",
    "mark_tenant_table",
    "on_tenant_table",
    "tenant_foreign_key",
]

TENANT_COLUMN = "instance_id"
TENANT_TABLE_INFO_KEY = "tenancy.tenant_table"
TENANTS_TABLE = "tenants"
"""The name of tenancy's own table of tenants (:class:`tenancy.Tenant`)."""

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# JSON on every database, JSONB on PostgreSQL.
JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    """Declarative base whose metadata names constraints deterministically (for Alembic)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class TenantScoped:
    """Mixin for a tenant's table: ``instance_id`` (UUID, NOT NULL) leads the primary key.

    Declare your own ``id`` and columns; the table's primary key renders as
    ``(instance_id, id)``. Tenant sessions filter, stamp and guard every mapped
    subclass, and on PostgreSQL ``create_all`` / ``op.enable_tenant_isolation`` add
    row-level security. Reference another tenant table with
    :func:`tenant_foreign_key` so the reference cannot cross tenants.
    """

    # sort_order puts the column first: mixin columns otherwise come after the class's own.
    # No default and no server default: outside a tenant session nothing fills it in.
    instance_id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, sort_order=-1000)


def mark_tenant_table(table: Table) -> Table:
    """Mark a Core ``Table`` (e.g. a many-to-many association table) as a tenant table.

    It must have an ``instance_id`` column; it then gets row-level security from
    ``create_all``, Alembic autogenerate and ``tenancy check`` like mapped tenant tables.
    """
    if TENANT_COLUMN not in table.c:
        raise ConfigurationError(f"table {table.name!r} has no {TENANT_COLUMN} column")
    table.info[TENANT_TABLE_INFO_KEY] = True
    if table not in _tenant_tables:
        _tenant_tables.add(table)
        for hook in _tenant_table_hooks:
            hook(table)
    return table


# The tenant tables marked so far (weakly: a test's throwaway metadata may go away) and what
# the layers above want done to each. The database layer registers its DDL listener through
# this, on tenant tables only, instead of listening on every Table of the process.
_tenant_tables: weakref.WeakSet[Table] = weakref.WeakSet()
_tenant_table_hooks: list[Callable[[Table], None]] = []


def on_tenant_table(hook: Callable[[Table], None]) -> None:
    """Call *hook* with every tenant table: those marked so far, then each one as it is marked."""
    _tenant_table_hooks.append(hook)
    for table in list(_tenant_tables):
        hook(table)


def is_tenant_table(table: Any) -> bool:
    """Whether *table* belongs to a tenant-scoped model or was marked with :func:`mark_tenant_table`."""
    return bool(getattr(table, "info", {}).get(TENANT_TABLE_INFO_KEY))


@event.listens_for(TenantScoped, "after_mapper_constructed", propagate=True)
def _mark_mapped_table(mapper: Mapper[Any], class_: type) -> None:
    if mapper.local_table is not None and isinstance(mapper.local_table, Table):
        mark_tenant_table(mapper.local_table)


def tenant_foreign_key(
    columns: str | list[str],
    target: str | list[str],
    **kwargs: Any,
) -> ForeignKeyConstraint:
    """A composite foreign key that carries the tenant: ``(instance_id, col) -> (instance_id, id)``.

    Put it in ``__table_args__``::

        class Note(TenantScoped, Base):
            __tablename__ = "notes"
            __table_args__ = (tenant_foreign_key("folder_id", "folders.id", ondelete="CASCADE"),)
            id: Mapped[int] = mapped_column(Identity(), primary_key=True)
            folder_id: Mapped[int]

    Plain foreign key checks ignore row-level security; including ``instance_id`` makes a
    reference to another tenant's row impossible (and no longer an existence oracle).
    """
    cols = [columns] if isinstance(columns, str) else list(columns)
    targets = [target] if isinstance(target, str) else list(target)
    table = targets[0].split(".")[0]
    return ForeignKeyConstraint([TENANT_COLUMN, *cols], [f"{table}.{TENANT_COLUMN}", *targets], **kwargs)
