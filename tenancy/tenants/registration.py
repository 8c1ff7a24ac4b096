"""Registering tenants seen in valid tokens, and reactivating removed ones."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from tenancy import lru
from tenancy.postgres.binding import REGISTER_FUNCTION, registration_proof
from tenancy.tenants.model import Tenant

__all__ = ["TenantRegistry", "upsert_seen_tenant"]


def upsert_seen_tenant(session: Session, tenant: uuid.UUID, *, site_id: str | None) -> None:
    """Insert *tenant* as ``active`` (due for sync) or reactivate it if ``removed``; race-free.

    One ``INSERT ... ON CONFLICT DO UPDATE ... WHERE status = 'removed'`` statement, so two
    first requests of a new tenant at once cannot collide and an active row is not touched.
    On PostgreSQL the runtime role cannot write ``tenants``: the statement runs inside
    ``tenancy.register_tenant``, which touches only the session's verified tenant and needs a
    registration proof that only code holding the binding key computes.
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
            raise
        return
    insert: Any = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(dialect)
    if insert is None:  # pragma: no cover - other databases: read, then write
        if session.get(Tenant, tenant) is None:
            session.add(Tenant(instance_id=tenant, status="active", site_id=site_id))
        return
    stmt = insert(Tenant).values(
        instance_id=tenant, status="active", site_id=site_id, first_seen_at=dt.datetime.now(dt.UTC)
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[Tenant.instance_id],
        # A reinstall: active again, and due for sync at once.
        set_={"status": "active", "last_synced_at": None, "next_attempt_at": None},
        where=Tenant.status == "removed",
    )
    session.execute(stmt)


class TenantRegistry:
    """Remembers tenants known to be registered and active, so most requests write nothing.

    Bounded (LRU) and time-limited: an entry is trusted for *ttl* seconds, so a tenant that
    the sync marks ``removed`` is reactivated by its next token within *ttl*.
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
        """Register or reactivate *tenant* unless it was done less than *ttl* seconds ago."""
        if not self.needs(tenant):
            return
        with open_session(tenant) as session, session.begin():
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
