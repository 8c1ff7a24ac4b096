"""The ``tenants`` row across a purge: retention, progress, and the tombstone it leaves.

A tenant is due for purge when it is ``removed``, its ``removed_at`` is older than the retention
and it was not purged since it was last removed. A purge first sets ``purge_started_at`` (and
empties ``purge_counts``, unless it is resuming), adds each batch's deleted rows to
``purge_counts`` in the batch's own transaction (so the counts survive a crash exactly), and
last writes the tombstone: ``purged_at``, every personal or site field NULL. Kept: the instance
id, status, removal and purge times, the counts, the origin, the sync's bookkeeping.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import Connection, Table, or_, select, text, update

from tenancy.tenants.model import Tenant

__all__ = ["KEPT_COLUMNS", "begin_purge", "count_batch", "due_for_purge", "removed_guard", "write_tombstone"]

tenants: Table = Tenant.__table__  # type: ignore[assignment]
c = tenants.c

# Everything else that may be NULL is Wix's facts about the site (names, URL, owner, raw body):
# a new column is personal until listed here.
KEPT_COLUMNS = frozenset(
    {
        "instance_id",
        "status",
        "first_seen_at",
        "last_synced_at",
        "last_attempt_at",
        "next_attempt_at",
        "consecutive_failures",
        "consecutive_refusals",
        "removed_at",
        "purge_started_at",
        "purged_at",
        "purge_counts",
        "origin_instance_id",
        "copied_from_origin_at",
    }
)


def due_for_purge(conn: Connection, *, cutoff: dt.datetime) -> list[uuid.UUID]:
    """Removed tenants whose retention ended before *cutoff*, not purged since their removal."""
    query = (
        select(c.instance_id)
        .where(
            c.status == "removed",
            c.removed_at <= cutoff,
            or_(c.purged_at.is_(None), c.purged_at < c.removed_at, c.purge_started_at.is_not(None)),
        )
        .order_by(c.removed_at, c.instance_id)
    )
    return list(conn.execute(query).scalars())


def removed_guard(*, immediately: bool) -> str:
    """SQL that a retention purge's every batch adds: the tenant is still removed (a reinstall
    during the purge stops it). An erasure on request (*immediately*) deletes whatever the status."""
    if immediately:
        return ""
    return " AND EXISTS (SELECT 1 FROM tenants g WHERE g.instance_id = :iid AND g.status = 'removed')"


def begin_purge(conn: Connection, instance_id: uuid.UUID, *, now: dt.datetime, immediately: bool) -> bool:
    """Mark the purge started (counts emptied) unless it is resuming; ``False`` when a retention
    purge finds the tenant no longer removed."""
    guard = [] if immediately else [c.status == "removed"]
    conn.execute(
        update(tenants)
        .where(c.instance_id == instance_id, c.purge_started_at.is_(None), *guard)
        .values(purge_started_at=now, purge_counts={})
    )
    if immediately:
        return True
    return conn.execute(select(c.status).where(c.instance_id == instance_id)).scalar() == "removed"


def count_batch(conn: Connection, instance_id: uuid.UUID, table: str, deleted: int) -> None:
    """Add a batch's deleted rows to ``purge_counts[table]`` (in the batch's transaction)."""
    conn.execute(
        text(
            "UPDATE tenants SET purge_counts = jsonb_set(COALESCE(purge_counts, '{}'::jsonb), ARRAY[:t],"
            " to_jsonb(COALESCE((purge_counts ->> :t)::bigint, 0) + :n)) WHERE instance_id = :iid"
        ),
        {"t": table, "n": deleted, "iid": instance_id},
    )


def write_tombstone(
    conn: Connection, instance_id: uuid.UUID, *, now: dt.datetime, immediately: bool
) -> dict[str, int] | None:
    """Finish the purge: ``purged_at``, personal fields NULL; returns the counts (``None`` when a
    retention purge finds the tenant reinstalled, or there is no row)."""
    values: dict[str, Any] = {
        col.name: None for col in tenants.columns if col.nullable and col.name not in KEPT_COLUMNS
    }
    values.update(purged_at=now, purge_started_at=None)
    guard = [] if immediately else [c.status == "removed"]
    stmt = (
        update(tenants).where(c.instance_id == instance_id, *guard).values(values).returning(c.purge_counts)
    )
    row = conn.execute(stmt).first()
    return None if row is None else {k: int(v) for k, v in (row[0] or {}).items()}
