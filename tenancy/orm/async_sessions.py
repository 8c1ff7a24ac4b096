"""AsyncSession parity: the same tenant sessions for ``asyncio`` code.

>>> sessions = AsyncTenantSessionFactory(async_engine, admin_engine=async_admin)
>>> async with sessions.for_instance(instance_id) as session:
...     notes = (await session.scalars(select(Note))).all()

The sync :class:`~tenancy.orm.sessions.TenantSession` runs inside the ``AsyncSession``, so the ORM
guard, the per-transaction tenant setting and the runtime role check are the very same code.
Needs ``greenlet`` (``pip install 'wix-tenancy[async]'``): SQLAlchemy's asyncio module is imported
when a factory is built, so ``import tenancy`` works on a plain install.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

from tenancy.errors import ConfigurationError
from tenancy.instance_ids import parse_instance_id
from tenancy.orm.sessions import InstanceResolver, TenantSession, key_source, open_admin
from tenancy.orm.translate import install_error_translation
from tenancy.postgres import psycopg_begin
from tenancy.postgres.binding import BindingKey
from tenancy.postgres.isolation import warn_without_rls
from tenancy.tenants.registration import TenantRegistry

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

__all__ = ["AsyncTenantSessionFactory"]

INSTALL_HINT = "pip install 'wix-tenancy[async]'"


def _asyncio() -> ModuleType:
    """SQLAlchemy's asyncio module, or a ConfigurationError saying how to install greenlet."""
    try:
        import sqlalchemy.ext.asyncio as module
    except ImportError:  # SQLAlchemy 2.1 installs greenlet only with its asyncio extra
        raise ConfigurationError(
            f"AsyncTenantSessionFactory needs the greenlet library: {INSTALL_HINT}"
        ) from None
    return module


class AsyncTenantSessionFactory:
    """Like :class:`~tenancy.TenantSessionFactory`, for an :class:`~sqlalchemy.ext.asyncio.AsyncEngine`."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        resolver: InstanceResolver | None = None,
        admin_engine: AsyncEngine | None = None,
        session_options: Mapping[str, Any] | None = None,
        binding_key: str | BindingKey | None = None,
    ) -> None:
        self._async = _asyncio()
        self.engine = engine
        self.admin_engine = admin_engine
        self.resolver = resolver
        self.registry = TenantRegistry()
        self._options = dict(session_options or {})
        # The key is read (when not configured) inside the first tenant transaction.
        self._keys = key_source(binding_key, admin_engine)
        install_error_translation(engine.sync_engine)
        # On PostgreSQL + psycopg the tenant setting rides with BEGIN (tenancy/postgres/psycopg_begin.py).
        psycopg_begin.install(engine.sync_engine)
        warn_without_rls(engine.dialect.name)

    def for_instance(self, instance_id: uuid.UUID | str) -> AsyncSession:
        """An ``AsyncSession`` that only sees and writes *instance_id*'s rows."""
        tenant = parse_instance_id(instance_id)
        session: AsyncSession = self._async.AsyncSession(
            self.engine,
            sync_session_class=TenantSession,
            instance_id=tenant,
            binding_keys=self._keys,
            **self._options,
        )
        return session

    async def for_token(self, token: str) -> AsyncSession:
        """Resolve a Wix access token (in a worker thread) and open its tenant's session.

        Registers the tenant (refusing a removed one) through the sync factory's path; raises and
        opens nothing when the token does not resolve.
        """
        if self.resolver is None:
            raise ConfigurationError(
                "for_token() needs AsyncTenantSessionFactory(..., resolver=TokenResolver(...))"
            )
        info = await asyncio.to_thread(self.resolver.resolve, token)
        tenant = parse_instance_id(info.instance_id)
        if self.registry.needs(tenant):  # the sync factory's path: TenantRegistry.register
            async with self.for_instance(tenant) as session:
                await session.run_sync(self.registry.register, tenant, site_id=getattr(info, "site_id", None))
        return self.for_instance(tenant)

    def admin(self, *, reason: str) -> AsyncSession:
        """A cross-tenant ``AsyncSession`` on the admin engine; *reason* is logged."""
        engine = open_admin(type(self).__name__, self.admin_engine, reason)
        session: AsyncSession = self._async.AsyncSession(engine, **self._options)
        session.info["tenancy.admin_reason"] = reason
        return session
