"""Declarative base, the tenant-scoped mixin and the ``tenants`` table."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    event,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, Mapper, mapped_column

__all__ = [
    "TENANT_COLUMN",
    "TENANT_TABLE_INFO_KEY",
    "Base",
    "Tenant",
    "TenantScoped",
    "is_tenant_table",
    "mark_tenant_table",
    "tenant_foreign_key",
]

TENANT_COLUMN = "instance_id"
TENANT_TABLE_INFO_KEY = "tenancy.tenant_table"

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
        raise ValueError(f"table {table.name!r} has no {TENANT_COLUMN} column")
    table.info[TENANT_TABLE_INFO_KEY] = True
    return table


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


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Tenant(TenantScoped, Base):
    """One row per app instance (tenant), filled by token registration and ``tenancy sync``.

    A tenant session sees exactly its own row; the sync job writes through the admin engine.
    """

    __tablename__ = "tenants"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'removed')", name="status"),
        # The sync's claims (tenancy.tenant_sync.store): tenants not in backoff, oldest first, and
        # tenants whose backoff is over. Each claim is then one short index scan; without
        # these it would sort or filter every row (quadratic in the number of tenants).
        Index(
            "ix_tenants_sync_order",
            "last_synced_at",
            postgresql_where=text("next_attempt_at IS NULL"),
            sqlite_where=text("next_attempt_at IS NULL"),
        ),
        Index("ix_tenants_next_attempt_at", "next_attempt_at"),
    )

    status: Mapped[str] = mapped_column(String(16), default="active", server_default="active")
    site_id: Mapped[str | None] = mapped_column(String(64))
    site_display_name: Mapped[str | None] = mapped_column(Text)
    site_url: Mapped[str | None] = mapped_column(Text)
    locale: Mapped[str | None] = mapped_column(String(32))
    payment_currency: Mapped[str | None] = mapped_column(String(8))
    time_zone: Mapped[str | None] = mapped_column(String(64))
    app_version: Mapped[str | None] = mapped_column(String(64))
    is_free: Mapped[bool | None] = mapped_column(Boolean)
    billing_package_name: Mapped[str | None] = mapped_column(String(128))
    billing_cycle: Mapped[str | None] = mapped_column(String(32))
    billing_expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    billing_auto_renewing: Mapped[bool | None] = mapped_column(Boolean)
    free_trial_status: Mapped[str | None] = mapped_column(String(32))
    permissions: Mapped[list[str] | None] = mapped_column(JSONType)
    installed_wix_apps: Mapped[list[str] | None] = mapped_column(JSONType)
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    first_seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    last_synced_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_sync_error: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Sync bookkeeping: when the last attempt started (so a run never retries a tenant it
    # already tried) and when the next attempt may start (backoff after failures).
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # Consecutive runs in which the token endpoint refused this instance (app removed);
    # the sync marks the row removed after a configurable number of them.
    consecutive_refusals: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The issue time (JWT ``iat``) of the newest Wix webhook event applied to this row: Wix
    # delivers events late, out of order and twice, so an older one is ignored, never applied.
    last_event_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"Tenant(instance_id={self.instance_id!s}, status={self.status!r})"
