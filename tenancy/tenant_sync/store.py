"""The SQL of ``tenancy sync``: which tenants to claim, registering ids, writing results.

Every function takes a ``Connection`` inside a transaction the caller owns. A claim is a
row lock (``SELECT ... FOR UPDATE SKIP LOCKED``) held until that transaction ends: it is
the worker's lease, released by commit, rollback or the connection dying (a killed
process's claims are free at once, no timeout). SQLite has no row locks and renders no
``FOR UPDATE``; there the sync runs in one process with one worker.

Claims go by key: due tenants are listed without a lock (:func:`list_candidates`), then
each is locked by its ``instance_id`` with the due conditions checked again
(:func:`claim_by_key`). On Citus the listing is a plain multi-shard read and the lock a
single-shard statement; a ``FOR UPDATE`` over the listing itself is a multi-shard
``FOR UPDATE``, which Citus refuses (and on a reference table, locks every copy).
"""

from __future__ import annotations

import datetime as dt
import functools
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from sqlalchemy import Connection, Row, Select, Table, Update, bindparam, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from tenancy.errors import InvalidInstanceId
from tenancy.instance_ids import parse_instance_id
from tenancy.tenant_sync.report import Outcome
from tenancy.tenants.model import Tenant
from tenancy.wix.types import AppInstance

__all__ = [
    "DATA_COLUMNS",
    "Backoff",
    "Selection",
    "claim_by_key",
    "count_claimable",
    "event_is_stale",
    "failure_values",
    "list_candidates",
    "listing_statement",
    "origin_instance_id",
    "record_failure",
    "record_origin",
    "record_removal",
    "register_instances",
    "success_values",
    "tenant_values",
    "update_statement",
    "update_tenant",
    "update_tenant_for_event",
    "write_success",
]

tenants: Table = Tenant.__table__  # type: ignore[assignment]  # declared as FromClause
c = tenants.c

# The columns Get App Instance fills; a response equal to these is "unchanged".
DATA_COLUMNS = (
    "site_id",
    "site_display_name",
    "site_url",
    "locale",
    "payment_currency",
    "time_zone",
    "app_version",
    "is_free",
    "billing_package_name",
    "billing_cycle",
    "billing_expires_at",
    "billing_auto_renewing",
    "free_trial_status",
    "permissions",
    "installed_wix_apps",
    "raw",
    "origin_instance_id",
)
_CLAIMED = ("instance_id", "status", "consecutive_failures", "consecutive_refusals", *DATA_COLUMNS)
_ERROR_MAX = 1000  # characters of an error kept on the row
FUTURE_SLACK = dt.timedelta(hours=1)  # sync dates further ahead than this are treated as due


@dataclass(frozen=True, kw_only=True)
class Selection:
    """Which tenants a run claims.

    ``mode``: ``"due"`` (never synced or synced before ``stale_before``, and not waiting
    out a backoff), ``"all"`` or ``"instances"`` (exactly ``instance_ids``). In every mode a
    tenant attempted at or after ``since`` (the run's start) is skipped, so one run tries a
    tenant at most once and concurrent runs split the work.
    """

    mode: Literal["due", "all", "instances"]
    since: dt.datetime
    now: dt.datetime
    stale_before: dt.datetime | None = None
    instance_ids: tuple[uuid.UUID, ...] = ()

    def _base(self) -> Select[Any]:
        # A date in the future is never trusted (it would keep the row from ever being
        # claimed): only the sync writes these columns, but a restored backup or a clock jump
        # could still leave one. The slack covers concurrent workers' clocks.
        future = self.now + FUTURE_SLACK
        stmt = select(*(c[name] for name in _CLAIMED)).where(
            or_(c.last_attempt_at.is_(None), c.last_attempt_at < self.since, c.last_attempt_at > future)
        )
        if self.mode == "instances":
            stmt = stmt.where(c.instance_id.in_(self.instance_ids))
        return stmt

    def phases(self) -> list[Select[Any]]:
        """The claim queries, tried in order; they select disjoint sets of rows.

        1. never synced, not in backoff; 2. synced, not in backoff, oldest first (in due
        mode only those synced before ``stale_before``); 3. tenants whose backoff is over
        (failing or removed ones; in due mode only when also stale), soonest first. Each is
        one short scan of ``ix_tenants_sync_order`` or ``ix_tenants_next_attempt_at``;
        a single ``ORDER BY last_synced_at NULLS FIRST`` would have to sort or filter
        every row, including the failing and removed ones, on every claim.
        """
        base = self._base()
        ready = base.where(c.next_attempt_at.is_(None))
        never = ready.where(or_(c.last_synced_at.is_(None), c.last_synced_at > self.now + FUTURE_SLACK))
        if self.mode == "due":
            assert self.stale_before is not None
            older = ready.where(c.last_synced_at < self.stale_before)
            retry = base.where(
                c.next_attempt_at <= self.now,
                or_(c.last_synced_at.is_(None), c.last_synced_at < self.stale_before),
            )
        else:
            older = ready.where(c.last_synced_at.is_not(None))
            retry = base.where(c.next_attempt_at.is_not(None))
        return [never, older.order_by(c.last_synced_at), retry.order_by(c.next_attempt_at)]

    def by_key(self) -> tuple[Select[Any], dict[str, Any]]:
        """The claim query of one tenant (bound as ``instance_id``) and its parameters.

        Its row if any phase would still select it. The statement is built once per mode
        (the sync runs it for every tenant) with the selection's values as parameters.
        """
        params: dict[str, Any] = {"since": self.since, "now": self.now, "stale_before": self.stale_before}
        # "instances" is "all" limited to the listed ids, and the key comes from that listing.
        return _by_key_statement("due" if self.mode == "due" else "all"), params


@functools.cache
def _by_key_statement(mode: Literal["due", "all"]) -> Select[Any]:
    template = Selection(
        mode=mode,
        since=cast(Any, bindparam("since")),
        now=cast(Any, bindparam("now")),
        stale_before=cast(Any, bindparam("stale_before")),
    )
    due = or_(*(phase.whereclause for phase in template.phases() if phase.whereclause is not None))
    stmt = select(*(c[name] for name in _CLAIMED)).where(c.instance_id == bindparam("instance_id"), due)
    return stmt.with_for_update(skip_locked=True)


def list_candidates(conn: Connection, selection: Selection, phase: int, *, limit: int) -> list[uuid.UUID]:
    """Up to ``limit`` ids that phase ``phase`` of ``selection`` selects, in its order; no lock.

    Other workers may claim any of them meanwhile: :func:`claim_by_key` checks again.
    """
    return list(conn.execute(listing_statement(selection, phase, limit=limit)).scalars())


def listing_statement(selection: Selection, phase: int, *, limit: int) -> Select[Any]:
    """The query of :func:`list_candidates` (the selection's values bound in it)."""
    return selection.phases()[phase].with_only_columns(c.instance_id).limit(limit)


def claim_by_key(conn: Connection, selection: Selection, instance_id: uuid.UUID) -> Row[Any] | None:
    """Lock and return ``instance_id``'s row if it is still to be synced, else ``None``.

    ``None`` also when another worker holds it (``SKIP LOCKED``): it is theirs. After their
    commit the row no longer matches (``last_attempt_at`` moved), so no tenant is fetched
    twice.
    """
    stmt, params = selection.by_key()
    return conn.execute(stmt, {**params, "instance_id": instance_id}).first()


def count_claimable(conn: Connection, selection: Selection) -> int:
    """How many tenants the run would claim now (for a progress bar; memory-flat)."""
    total = 0
    for query in selection.phases():
        sub = query.order_by(None).subquery()
        total += int(conn.execute(select(func.count()).select_from(sub)).scalar_one())
    return total


def register_instances(conn: Connection, instance_ids: Sequence[uuid.UUID], *, now: dt.datetime) -> int:
    """Insert tenants for ids not in the table yet (active, never synced); returns how many."""
    dialect = conn.dialect.name
    insert: Any = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(dialect)
    added = 0
    for iid in dict.fromkeys(instance_ids):
        if insert is not None:
            stmt = insert(tenants).values(instance_id=iid, status="active", first_seen_at=now)
            # Count the returned rows: psycopg reports rowcount -1 for this statement.
            inserted = stmt.on_conflict_do_nothing(index_elements=["instance_id"]).returning(c.instance_id)
            added += len(conn.execute(inserted).all())
        elif conn.execute(select(c.instance_id).where(c.instance_id == iid)).first() is None:
            conn.execute(tenants.insert().values(instance_id=iid, status="active", first_seen_at=now))
            added += 1
    return added


def tenant_values(app: AppInstance) -> dict[str, Any]:
    """The ``tenants`` data columns (and ``raw``) for a Get App Instance answer.

    The row mirrors Wix: a field Wix no longer sends becomes NULL (``raw`` keeps the body).
    """
    inst, site = app.instance, app.site
    billing = inst.billing if inst is not None else None
    trial = billing.free_trial_info if billing is not None else None
    return {
        "site_id": site.site_id if site else None,
        "site_display_name": site.site_display_name if site else None,
        "site_url": site.url if site else None,
        "locale": site.locale if site else None,
        "payment_currency": site.payment_currency if site else None,
        "time_zone": site.time_zone if site else None,
        "app_version": inst.app_version if inst else None,
        "is_free": inst.is_free if inst else None,
        "billing_package_name": billing.package_name if billing else None,
        "billing_cycle": billing.billing_cycle if billing else None,
        "billing_expires_at": billing.expiration_date if billing else None,
        "billing_auto_renewing": billing.auto_renewing if billing else None,
        "free_trial_status": trial.status if trial else None,
        "permissions": list(inst.permissions) if inst else None,
        "installed_wix_apps": list(site.installed_wix_apps) if site else None,
        "raw": app.raw,
        "origin_instance_id": origin_instance_id(inst.origin_instance_id if inst else None),
    }


def origin_instance_id(value: object) -> uuid.UUID | None:
    """Wix's ``originInstanceId`` (a duplicated site's original) as a UUID; ``None`` if absent or
    not a UUID (a malformed id names no tenant to copy from)."""
    if value is None:
        return None
    try:
        return parse_instance_id(value)
    except InvalidInstanceId:
        return None


def record_removal(conn: Connection, instance_id: uuid.UUID, *, now: dt.datetime) -> None:
    """Start the tenant's retention at *now* unless it already runs: call it before the row is
    marked ``removed``. A duplicated or late ``AppRemoved`` never moves it forward; a row that
    was reactivated without clearing ``removed_at`` (a token's registration) starts afresh."""
    conn.execute(
        update(tenants)
        .where(c.instance_id == instance_id, or_(c.removed_at.is_(None), c.status != "removed"))
        .values(removed_at=now)
    )


def record_origin(conn: Connection, instance_id: uuid.UUID, origin: uuid.UUID) -> None:
    """Store the site this tenant was duplicated from, the first time it is told."""
    conn.execute(
        update(tenants)
        .where(c.instance_id == instance_id, c.origin_instance_id.is_(None), c.instance_id != origin)
        .values(origin_instance_id=origin)
    )


def _same(old: Any, new: Any) -> bool:
    # SQLite hands back naive datetimes for timezone-aware columns; they were stored as UTC.
    if isinstance(old, dt.datetime) and old.tzinfo is None:
        old = old.replace(tzinfo=dt.UTC)
    if isinstance(new, tuple):
        new = list(new)
    return bool(old == new)


def write_success(conn: Connection, row: Row[Any], values: Mapping[str, Any], *, now: dt.datetime) -> Outcome:
    """Store a successful fetch: ``"unchanged"`` moves only the sync bookkeeping columns,
    ``"changed"`` also writes the data columns that differ (and reactivates a removed row)."""
    outcome, written = success_values(cast(Mapping[str, Any], row._mapping), values, now=now)
    update_tenant(conn, row._mapping["instance_id"], written)
    return outcome


def success_values(
    current: Mapping[str, Any], values: Mapping[str, Any], *, now: dt.datetime
) -> tuple[Outcome, dict[str, Any]]:
    """What :func:`write_success` writes over the claimed row *current*, and its outcome."""
    changed = {name: value for name, value in values.items() if not _same(current[name], value)}
    bookkeeping = {
        "status": "active",
        "removed_at": None,  # reinstalled: no retention runs
        "last_synced_at": now,
        "last_attempt_at": now,
        "next_attempt_at": None,
        "last_sync_error": None,
        "consecutive_failures": 0,
        "consecutive_refusals": 0,
    }
    outcome: Outcome = "changed" if changed or current["status"] != "active" else "unchanged"
    return outcome, {**changed, **bookkeeping}


def update_tenant(conn: Connection, instance_id: uuid.UUID, values: Mapping[str, Any]) -> None:
    """``UPDATE tenants SET <values> WHERE instance_id = ...`` (the sync's and webhooks' write)."""
    stmt, params = update_statement(instance_id, values)
    conn.execute(stmt, params)


def update_statement(instance_id: uuid.UUID, values: Mapping[str, Any]) -> tuple[Update, dict[str, Any]]:
    """The statement of :func:`update_tenant` and its parameters (one statement object per set
    of columns)."""
    params = {_PARAM + name: value for name, value in values.items()}
    params[_PARAM + "key"] = instance_id
    return _update_statement(tuple(values)), params


_PARAM = "p_"  # bound parameter names: a column's own name is reserved in UPDATE ... SET


def event_is_stale(conn: Connection, instance_id: uuid.UUID, event_at: dt.datetime) -> bool:
    """Whether the row already applied an event issued after *event_at*; locks the row until the
    transaction ends, so the event's other writes and its ``last_event_at`` go in together."""
    newest = conn.execute(
        select(c.last_event_at).where(c.instance_id == instance_id).with_for_update()
    ).scalar_one_or_none()
    if newest is None:
        return False
    if newest.tzinfo is None:  # SQLite hands back naive datetimes; they were stored as UTC
        newest = newest.replace(tzinfo=dt.UTC)
    return bool(newest > event_at)


def update_tenant_for_event(
    conn: Connection, instance_id: uuid.UUID, values: Mapping[str, Any], *, event_at: dt.datetime
) -> bool:
    """Apply a webhook event's *values* unless the row has applied a newer event; returns whether.

    ``last_event_at`` is set to *event_at* in the same statement, and only when it is not later
    than *event_at* (an equal time is a duplicate or a same-second event: applied again, which
    is harmless). The row lock of the ``UPDATE`` orders concurrent deliveries.
    """
    names = tuple(values)
    params = {_PARAM + name: value for name, value in values.items()}
    params[_PARAM + "key"] = instance_id
    params[_PARAM + "last_event_at"] = event_at
    return bool(conn.execute(_event_update_statement(names), params).rowcount)


@functools.lru_cache(maxsize=16)
def _event_update_statement(names: tuple[str, ...]) -> Update:
    at = bindparam(_PARAM + "last_event_at", type_=c.last_event_at.type)
    values = {name: bindparam(_PARAM + name, type_=c[name].type) for name in names}
    return (
        update(tenants)
        .where(
            c.instance_id == bindparam(_PARAM + "key"), or_(c.last_event_at.is_(None), c.last_event_at <= at)
        )
        .values({**values, "last_event_at": at})
    )


@functools.lru_cache(maxsize=64)
def _update_statement(names: tuple[str, ...]) -> Update:
    # One statement object per set of written columns, bound by parameters: SQLAlchemy then
    # reuses its compiled form without building and hashing a statement of ~25 literal values
    # per tenant (about a third of the sync's database CPU). Few distinct sets ever occur.
    values = {name: bindparam(_PARAM + name, type_=c[name].type) for name in names}
    return update(tenants).where(c.instance_id == bindparam(_PARAM + "key")).values(values)


@dataclass(frozen=True, kw_only=True)
class Backoff:
    """Delay before retrying a failing tenant: ``base * 2**(failures-1)``, capped at ``cap``,
    half of it random ("equal jitter") so failing tenants do not retry in lockstep."""

    base: dt.timedelta = dt.timedelta(minutes=1)
    cap: dt.timedelta = dt.timedelta(hours=1)

    def delay(self, failures: int, rng: random.Random) -> dt.timedelta:
        """The wait after the ``failures``-th consecutive failure."""
        full: dt.timedelta = min(self.cap, self.base * 2 ** max(0, min(failures - 1, 30)))
        return full / 2 + full * (rng.random() / 2)


def record_failure(
    conn: Connection,
    row: Row[Any],
    reason: str,
    *,
    refused: bool,
    now: dt.datetime,
    remove_after: int,
    backoff: Backoff,
    recheck_removed_after: dt.timedelta,
    rng: random.Random,
) -> Outcome:
    """Record a failed attempt on the row; tenant data is never touched.

    ``refused`` (the token endpoint refused the instance): after ``remove_after``
    consecutive refusals, or at once if it is already ``removed``, the row is ``removed``
    (``"removed"``) and retried only every ``recheck_removed_after``. Otherwise
    ``"failed"``, retried after ``backoff``.
    """
    outcome, values = failure_values(
        cast(Mapping[str, Any], row._mapping),
        reason,
        refused=refused,
        now=now,
        remove_after=remove_after,
        backoff=backoff,
        recheck_removed_after=recheck_removed_after,
        rng=rng,
    )
    update_tenant(conn, row._mapping["instance_id"], values)
    return outcome


def failure_values(
    current: Mapping[str, Any],
    reason: str,
    *,
    refused: bool,
    now: dt.datetime,
    remove_after: int,
    backoff: Backoff,
    recheck_removed_after: dt.timedelta,
    rng: random.Random,
) -> tuple[Outcome, dict[str, Any]]:
    """What :func:`record_failure` writes over the claimed row *current*, and its outcome."""
    failures = int(current["consecutive_failures"]) + 1
    # Only a success resets the refusal count: a timeout between two refusals says nothing.
    refusals = int(current["consecutive_refusals"]) + (1 if refused else 0)
    # A refusal of a tenant already removed (by earlier runs, or by an AppRemoved webhook)
    # confirms it: it stays removed and waits for the next recheck.
    removed = refused and (refusals >= remove_after or current["status"] == "removed")
    wait = recheck_removed_after if removed else backoff.delay(failures, rng)
    values: dict[str, Any] = {
        "last_attempt_at": now,
        "next_attempt_at": now + wait,
        "last_sync_error": reason[:_ERROR_MAX],
        "consecutive_failures": failures,
        "consecutive_refusals": refusals,
    }
    if removed:
        values["status"] = "removed"
        if current["status"] != "removed":
            values["removed_at"] = now  # the retention starts
    return ("removed" if removed else "failed"), values
