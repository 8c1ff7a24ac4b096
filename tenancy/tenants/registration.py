"""Registering tenants seen in valid tokens; a removed tenant is refused, never reactivated."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from tenancy import lru
from tenancy.errors import TenantRemoved
from tenancy.postgres.binding import REGISTER_FUNCTION, TENANT_REMOVED_SQLSTATE, registration_proof
from tenancy.tenants.model import Tenant

__all__ = ["TenantRegistry", "upsert_seen_tenant"]


def upsert_seen_tenant(session: Session, tenant: uuid.UUID, *, site_id: str | None) -> None:
    """Insert *tenant* as ``active`` (due for sync) unless it exists; race-free.

    One ``INSERT ... ON CONFLICT DO NOTHING``, so two first requests of a new tenant at once
    cannot collide and an existing row is not touched. A tenant whose row is not ``active``
    (``removed`` by ``AppRemoved`` or the sync) raises :class:`~tenancy.TenantRemoved` and is
    left as it is: a token, even one a resolver cached before the removal, is no evidence of
    a reinstall (``AppInstalled`` and the sync's evidence are). On PostgreSQL the runtime role
    cannot write ``tenants``: the statement runs inside ``tenancy.register_tenant``, which
    touches only the session's verified tenant, needs a registration proof that only code
    holding the binding key computes, and refuses a removed tenant (SQLSTATE ``TN001``).
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        keys = session._tenancy_keys  # type: ignore[attr-defined]
        try:
            session.execute(
                text(f"SELECT {REGISTER_FUNCTION}(:site_id, :proof)"),
                {"site_id": site_id, "proof": registration_proof(keys.key(), tenant)},
            )
        except DBAPIError as exc:
            exc.hide_parameters = True  # the proof is a secret; applications log errors
            removed = getattr(exc.orig, "sqlstate", None) == TENANT_REMOVED_SQLSTATE
            if not removed:
                raise
        else:
            return
        raise TenantRemoved()  # outside the except block: the driver's error is not chained
    insert: Any = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(dialect)
    if insert is None:  # pragma: no cover - other databases: read, then write
        row = session.get(Tenant, tenant)
        if row is None:
            session.add(Tenant(instance_id=tenant, status="active", site_id=site_id))
        elif row.status != "active":
            raise TenantRemoved()
        return
    stmt = insert(Tenant).values(
        instance_id=tenant, status="active", site_id=site_id, first_seen_at=dt.datetime.now(dt.UTC)
    )
    session.execute(stmt.on_conflict_do_nothing(index_elements=[Tenant.instance_id]))
    status = session.scalar(select(Tenant.status).where(Tenant.instance_id == tenant))
    if status != "active":
        raise TenantRemoved()


class TenantRegistry:
    """Remembers tenants known to be registered and active, so most requests write nothing.

    Bounded (LRU) and time-limited: an entry is trusted for *ttl* seconds. A tenant removed
    by another process (``AppRemoved`` applied there, or the sync) therefore keeps getting
    sessions here for at most *ttl* seconds; after that its next token is checked again and
    refused (:class:`~tenancy.TenantRemoved`). The process that applies the event forgets
    the tenant at once (:func:`tenancy.integrations.runtime.receive_webhook`).
    """

    def __init__(
        self, *, ttl: float = 60.0, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._known: OrderedDict[uuid.UUID, float] = OrderedDict()
        self._lock = threading.Lock()

    def ensure(
        self, tenant: uuid.UUID, open_session: Callable[[uuid.UUID], Session], *, site_id: str | None = None
    ) -> None:
        """Register *tenant* unless done less than *ttl* seconds ago; raises
        :class:`~tenancy.TenantRemoved` (and remembers nothing) for a removed tenant."""
        if self.needs(tenant):
            with open_session(tenant) as session:
                self.register(session, tenant, site_id=site_id)

    def register(self, session: Session, tenant: uuid.UUID, *, site_id: str | None = None) -> None:
        """Register *tenant* in one transaction of *session* (its tenant session), then remember it.

        The step :meth:`ensure` runs, and the one the async factory runs through
        ``AsyncSession.run_sync``, so both refuse a removed tenant the same way.
        """
        with session.begin():
            upsert_seen_tenant(session, tenant, site_id=site_id)
        self.remember(tenant)

    def needs(self, tenant: uuid.UUID) -> bool:
        """Whether *tenant* must be (re)registered: unknown, or known for longer than *ttl*."""
        with self._lock:
            seen = self._known.get(tenant)
        return seen is None or self._clock() - seen >= self._ttl

    def remember(self, tenant: uuid.UUID) -> None:
        """Record that *tenant* was registered and is active as of now."""
        with self._lock:
            lru.put(self._known, tenant, self._clock(), self._max)

    def forget(self, tenant: Any = None) -> None:
        """Forget one tenant (or all, with no argument) so its next token re-registers it."""
        with self._lock:
            if tenant is None:
                self._known.clear()
            else:
                self._known.pop(tenant, None)
