"""The ``tenants`` table: one row per app instance, with Wix's facts and the sync's bookkeeping."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, DateTime, Index, Integer, String, Text, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from tenancy.models import TENANTS_TABLE, Base, JSONType, TenantScoped

__all__ = ["Tenant"]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Tenant(TenantScoped, Base):
    """One row per app instance (tenant), filled by token registration and ``tenancy sync``.

    A tenant session sees exactly its own row; the sync job writes through the admin engine.
    """

    __tablename__ = TENANTS_TABLE
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
    # The lifecycle (tenancy.lifecycle): when the app was removed (retention runs from here;
    # cleared on reinstall), the purge's progress and its tombstone (rows deleted per table),
    # and the site this one was duplicated from, with when its rows were copied.
    removed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    purge_started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    purged_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    purge_counts: Mapped[dict[str, int] | None] = mapped_column(JSONType)
    origin_instance_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    copied_from_origin_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # The issue time (JWT ``iat``) of the newest Wix webhook event applied to this row: Wix
    # delivers events late, out of order and twice, so an older one is ignored, never applied.
    last_event_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"Tenant(instance_id={self.instance_id!s}, status={self.status!r})"
