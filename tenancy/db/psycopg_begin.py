"""Send the tenant setting in the same network round trip as psycopg's ``BEGIN``.

psycopg 3 opens a transaction lazily: before the first statement it sends ``BEGIN`` as a
simple query of its own and waits for the answer. A tenant session then used to send
``SELECT set_config(...)`` as a second statement: one more round trip per transaction
(about -25% transactions per second on loopback, more across a network). Here the setting
travels with ``BEGIN`` in one libpq pipeline (two extended-protocol statements and one Sync)::

    BEGIN
    SET LOCAL tenancy.instance_id = '6f1c...-...'

so a tenant transaction costs exactly the round trips of an unscoped one. ``SET LOCAL``
rather than ``set_config()``: Citus forwards ``SET LOCAL`` to the shards (with
``citus.propagate_set_commands = 'local'``) and ``set_config`` not at all; and a pipeline
rather than one ``BEGIN; SET LOCAL ...`` message, which on Citus made every worker
connection warn "there is already a transaction in progress".

Sync and async alike: :class:`TenantBeginConnection` and :class:`AsyncTenantBeginConnection`
override the same two generator methods. Engines passed to the session factories adopt them
for new connections by a class swap in a ``connect`` pool hook (:func:`install`).

**Private psycopg API used**, all of it in this module (``tests/test_fast_begin.py`` fails
loudly if psycopg changes it, and :data:`SUPPORTED` turns the fast path off at import if a
name is gone): ``psycopg._connection_base.BaseConnection`` and its ``_start_query`` (the
generator every cursor runs to open the transaction), ``_get_tx_start_command`` (the
``BEGIN ...`` bytes, with isolation level and read-only flags), ``_exec_command``,
``_check_connection_ok``, ``_autocommit``, ``_pipeline``, ``pgconn._encoding`` and
``psycopg.generators.send`` / ``fetch_many``. Why: psycopg offers no public hook to add to its ``BEGIN``,
and doing it from SQLAlchemy (``do_begin``, or a statement in ``after_begin``) costs a round
trip of its own, which is the cost removed here.

**Fail closed.** The setting is *armed* on the connection when a tenant session's
transaction begins (``after_begin``) and the connection is idle, and *disarmed* by
``commit()``, ``rollback()`` (which the pool's reset-on-return also calls) and pool
check-in. While armed, every ``BEGIN`` psycopg sends carries it: in pipeline mode as two
queued commands; in autocommit mode, where there is no transaction to carry it, the
statement is refused; a ``BEGIN`` sent by any other path (``Connection.transaction()``,
two-phase) fails on the two results it gets back instead of running unscoped. A connection
that is not a :class:`TenantBeginConnection` (another driver, a psycopg subclass of the
user's, connections opened before the factory) is never armed: the session then
sends ``set_config`` as its own statement, as before.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import psycopg
from psycopg import errors as e
from psycopg import generators, pq

try:
    from psycopg._connection_base import BaseConnection
except ImportError:  # a psycopg that moved it: no fast path (SUPPORTED is False), never an error
    BaseConnection = psycopg.Connection  # type: ignore[misc]
from sqlalchemy import Engine, event
from sqlalchemy.pool import Pool

from tenancy.db.isolation import SETTING_NAME

__all__ = [
    "SUPPORTED",
    "AsyncTenantBeginConnection",
    "TenantBeginConnection",
    "arm",
    "install",
    "setting_command",
]

_IDLE = pq.TransactionStatus.IDLE
_COMMAND_OK = pq.ExecStatus.COMMAND_OK
_FATAL_ERROR = pq.ExecStatus.FATAL_ERROR
_PIPELINE_SYNC = pq.ExecStatus.PIPELINE_SYNC
_CANONICAL = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

_NEEDED = ("_start_query", "_get_tx_start_command", "_check_connection_ok", "_exec_command")
SUPPORTED: bool = (
    all(hasattr(psycopg.Connection, name) for name in _NEEDED)
    and all(hasattr(generators, name) for name in ("send", "fetch_many"))
    and pq.__build_version__ >= 140000  # libpq pipeline mode
)
"""Whether this psycopg has the private hooks the fast path needs (else: separate statement)."""


def setting_command(tenant: uuid.UUID) -> bytes:
    """``SET LOCAL tenancy.instance_id = '<uuid>'`` for a validated, canonical UUID."""
    text = str(tenant)
    if not isinstance(tenant, uuid.UUID) or not _CANONICAL.fullmatch(text):
        raise ValueError("the tenant setting is inlined only for a canonical uuid.UUID")
    return f"SET LOCAL {SETTING_NAME} = '{text}'".encode("ascii")


# The overrides below are plain functions shared by the sync and async classes (a mixin base
# would change the instance layout and forbid adopting plain connections by class swap).
# They call psycopg's own implementations on BaseConnection, where both classes get them.


def _get_tx_start_command(self: Any) -> bytes:
    begin: bytes = BaseConnection._get_tx_start_command(self)
    setting: bytes | None = self._tenancy_setting
    if setting is None:
        return begin
    # Two statements: any caller other than _start_query below (which expects two results)
    # fails on them instead of opening a transaction without the setting.
    return begin + b"; " + setting


def _start_query(self: Any) -> Any:  # PQGen[None]
    setting = self._tenancy_setting
    if setting is None:
        return (yield from BaseConnection._start_query(self))
    if self._autocommit:
        raise e.ProgrammingError(
            "tenancy: the connection was switched to autocommit inside a tenant transaction; "
            "refusing to run a statement without the tenant setting"
        )
    if self.pgconn.transaction_status != _IDLE:
        return None
    if self._pipeline:
        # Pipeline mode uses the extended protocol: one statement per command, queued
        # together and sent at the next sync, so still no extra round trip.
        yield from self._exec_command(BaseConnection._get_tx_start_command(self))
        yield from self._exec_command(setting)
        yield from self._pipeline._sync_gen()
        return None
    self._check_connection_ok()
    return (yield from _begin_pipelined(self, BaseConnection._get_tx_start_command(self), setting))


def _begin_pipelined(self: Any, begin: bytes, setting: bytes) -> Any:  # PQGen[None]
    # BEGIN and SET LOCAL as a libpq pipeline (extended protocol, one Sync): one network
    # round trip, like a two-statement simple query, but each is a statement of its own.
    # On Citus, the two-statement message made every worker connection answer "there is
    # already a transaction in progress" (relayed to the client and logged on every node).
    pgconn = self.pgconn
    pgconn.enter_pipeline_mode()
    results: list[Any] = []
    try:
        pgconn.send_query_params(begin, None)
        pgconn.send_query_params(setting, None)
        pgconn.pipeline_sync()
        yield from generators.send(pgconn)
        while not results or results[-1].status != _PIPELINE_SYNC:
            results += yield from generators.fetch_many(pgconn)
    finally:
        if pgconn.status == pq.ConnStatus.OK and results and results[-1].status == _PIPELINE_SYNC:
            pgconn.exit_pipeline_mode()
    for result in results:
        if result.status == _FATAL_ERROR:
            raise e.error_from_result(result, encoding=pgconn._encoding)
    if [r.status for r in results] != [_COMMAND_OK, _COMMAND_OK, _PIPELINE_SYNC]:
        raise e.InternalError(f"unexpected results from {begin.decode()!r} and the tenant setting")
    return None


class TenantBeginConnection(psycopg.Connection[Any]):
    """A psycopg connection whose ``BEGIN`` can carry the tenant setting (see the module doc)."""

    _tenancy_setting: bytes | None = None
    _get_tx_start_command = _get_tx_start_command
    _start_query = _start_query

    def commit(self) -> None:
        """Commit, and forget the tenant setting (the next transaction re-arms it)."""
        self._tenancy_setting = None
        super().commit()

    def rollback(self) -> None:
        """Roll back, and forget the tenant setting (the next transaction re-arms it)."""
        self._tenancy_setting = None
        super().rollback()


class AsyncTenantBeginConnection(psycopg.AsyncConnection[Any]):
    """The :class:`TenantBeginConnection` of ``AsyncSession`` s (psycopg's async connection)."""

    _tenancy_setting: bytes | None = None
    _get_tx_start_command = _get_tx_start_command
    _start_query = _start_query

    async def commit(self) -> None:
        """Commit, and forget the tenant setting (the next transaction re-arms it)."""
        self._tenancy_setting = None
        await super().commit()

    async def rollback(self) -> None:
        """Roll back, and forget the tenant setting (the next transaction re-arms it)."""
        self._tenancy_setting = None
        await super().rollback()


_OURS = (TenantBeginConnection, AsyncTenantBeginConnection)
_ADOPT = {psycopg.Connection: TenantBeginConnection, psycopg.AsyncConnection: AsyncTenantBeginConnection}


def arm(driver_connection: object, tenant: uuid.UUID) -> bool:
    """Make the next ``BEGIN`` on *driver_connection* carry *tenant*'s setting.

    Returns False (and changes nothing) when it cannot: not a :class:`TenantBeginConnection`,
    already inside a transaction (savepoints, a joined outer transaction), pipeline mode or
    autocommit. The caller then sends the setting as a statement of its own.
    """
    if not SUPPORTED or not isinstance(driver_connection, _OURS):
        return False
    if driver_connection.autocommit or driver_connection._pipeline is not None:
        return False
    if driver_connection.pgconn.transaction_status != _IDLE:
        return False
    driver_connection._tenancy_setting = setting_command(tenant)
    return True


def _driver(dbapi_connection: Any) -> Any:
    # Async engines pool SQLAlchemy's adapter; the psycopg connection is behind it.
    return getattr(dbapi_connection, "driver_connection", dbapi_connection)


def _adopt(dbapi_connection: Any, connection_record: Any) -> None:
    # Swap the class of a fresh plain psycopg connection (same layout, methods only), rather
    # than opening it ourselves in a do_connect hook: the user's own do_connect hooks (IAM
    # tokens, passwords from a vault) keep working whatever order they were registered in.
    # A connection of any other class, the user's subclass included, is left alone.
    driver = _driver(dbapi_connection)
    ours = _ADOPT.get(type(driver))
    if ours is not None:
        driver.__class__ = ours


def install(engine: Engine) -> bool:
    """Make *engine*'s new psycopg connections carry the setting with ``BEGIN``.

    *engine* is a sync engine (for an ``AsyncEngine``, pass its ``sync_engine``). Idempotent.
    Connections already in the pool keep their class (tenant sessions then use the
    separate statement on them) until they are replaced.
    """
    if not SUPPORTED or engine.dialect.name != "postgresql" or engine.dialect.driver != "psycopg":
        return False
    if not event.contains(engine, "connect", _adopt):
        event.listen(engine, "connect", _adopt)
    return True


@event.listens_for(Pool, "checkin")
def _disarm_on_checkin(dbapi_connection: Any, connection_record: Any) -> None:
    # Belt and braces: commit()/rollback() already disarm, and the pool's reset-on-return
    # calls rollback(); this also covers pools built with reset_on_return=None.
    driver = _driver(dbapi_connection)
    if isinstance(driver, _OURS):
        driver._tenancy_setting = None
