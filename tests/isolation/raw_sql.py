"""One pool connection, sync or async, directly or through PgBouncer: the raw-SQL battery's runner.

Scenarios 59-68 (ISOLATION.md) run the same sync functions against each route: in an
``AsyncSession`` they run through ``run_sync``, on the async driver. The pool holds one
connection and PgBouncer one server connection, so the next checkout always gets the
connection the attacker used.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, create_engine
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import Session

from tenancy import AsyncTenantSessionFactory, TenantSessionFactory
from tenancy.postgres.binding import BindingKey

__all__ = ["Runner", "scalar", "via_port"]

T = TypeVar("T")


def via_port(url: str, port: int) -> str:
    """*url* with its host and port replaced by 127.0.0.1:*port* (the PgBouncer)."""
    head, _, rest = url.partition("@")
    return f"{head}@127.0.0.1:{port}/{rest.split('/', 1)[1]}"


class Runner:
    """Runs functions in tenant sessions (or plain connections) over a pool of one connection."""

    def __init__(
        self, url: str, key: BindingKey, *, flavor: str, connect_args: dict[str, Any] | None = None
    ) -> None:
        self.flavor = flavor
        kw: dict[str, Any] = {"pool_size": 1, "max_overflow": 0, "pool_timeout": 10}
        kw["connect_args"] = connect_args or {}
        if flavor == "sync":
            self._engine = create_engine(url, **kw)
            self._sync = TenantSessionFactory(self._engine, binding_key=key)
        else:
            self._loop = asyncio.new_event_loop()
            self._async_engine = create_async_engine(url, **kw)
            self._async = AsyncTenantSessionFactory(self._async_engine, binding_key=key)

    def run(self, tenant: uuid.UUID, fn: Callable[[Session], T], *, commit: bool = True) -> T:
        """``fn(session)`` in *tenant*'s session; committed unless *commit* is False."""
        if self.flavor == "sync":
            with self._sync.for_instance(tenant) as session:
                result = fn(session)
                if commit:
                    session.commit()
                return result

        async def go() -> T:
            async with self._async.for_instance(tenant) as session:
                result = await session.run_sync(fn)
                if commit:
                    await session.commit()
                return result

        return self._loop.run_until_complete(go())

    def plain(self, fn: Callable[[Connection], T]) -> T:
        """``fn(connection)`` on a plain runtime connection of the same pool (no tenant)."""
        if self.flavor == "sync":
            with self._engine.begin() as conn:
                return fn(conn)

        async def go() -> T:
            async with self._async_engine.begin() as conn:
                return await conn.run_sync(fn)

        return self._loop.run_until_complete(go())

    def checked_out(self) -> int:
        """Connections of the pool not returned to it (a leak holds the pool's only slot)."""
        engine = self._engine if self.flavor == "sync" else self._async_engine.sync_engine
        return int(engine.pool.checkedout())  # type: ignore[attr-defined]

    def close(self) -> None:
        """Dispose of the engine (and the event loop)."""
        if self.flavor == "sync":
            self._engine.dispose()
        else:
            self._loop.run_until_complete(self._async_engine.dispose())
            self._loop.close()


def scalar(sql: Any, **params: Any) -> Callable[[Any], Any]:
    """A function running *sql* on a session or connection and returning its scalar."""
    return lambda s: s.execute(sql, params).scalar()
