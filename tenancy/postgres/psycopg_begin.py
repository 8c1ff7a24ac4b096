"""Send the sealed tenant binding in the same network round trip as psycopg's ``BEGIN``.

psycopg 3 opens a transaction lazily: before the first statement it sends ``BEGIN`` and waits
for the answer. Sending the binding (``tenancy.instance_id`` and ``tenancy.seal``) as a
statement of its own would cost one more round trip per transaction (about -25% transactions
per second on loopback, more across a network). Here psycopg's ``BEGIN`` and the binding
statement go out together in one libpq *pipeline* (public ``pgconn`` API), after the reset of
whatever the connection's previous transactions left at session level::

    BEGIN; RESET ALL; RESET ROLE; CLOSE ALL; DISCARD SEQUENCES; COMMIT   -- binding.RESET_SQL
    BEGIN                                             -- psycopg's own, with its clauses
    SELECT tenancy.session_state(false, $3, $1, $2)   -- one Sync: one round trip for all

The reset commits in a transaction of its own before psycopg's ``BEGIN``: the tenant's
transaction then starts from the reset ``default_transaction_*`` values, and its ``ROLLBACK``
cannot undo the reset. No Sync in between, so PgBouncer (transaction mode) sees one
transaction and keeps the server connection for all of it.

The values are bound parameters: they never appear in query text, which other backends of
the role can read in ``pg_stat_activity`` (and ``pg_stat_statements`` keeps). ``$3`` names the
backend whose role settings this connection already checked (``_tenancy_backend``, from the
last binding's answer; see :data:`~tenancy.postgres.binding.CHECK_FUNCTION`). The same
statement reports whether SQL left state that cannot be reset cheaply: a prepared statement
made by SQL (``PREPARE``; psycopg prepares through the protocol, so such a statement can only
be an attempt to take over a ``_pg3_N`` name that this checkout would execute) or a ``LISTEN``
channel. The connection is then closed and :class:`TaintedConnection` raised, which the
engine's ``handle_error`` hook (:mod:`tenancy.orm.translate`) turns into
:class:`~tenancy.CrossTenantAccess` while discarding that one connection, not the pool.
psycopg's automatic prepared statements stay on.

Sync and async alike: :class:`TenantBeginConnection` and :class:`AsyncTenantBeginConnection`
override the same generator method. Engines passed to the session factories adopt them for
new connections by a class swap in a ``connect`` pool hook (:func:`install`).

**Private psycopg API used**, all of it in this module (``tests/db/test_fast_begin.py`` fails
loudly if psycopg changes it, and :data:`SUPPORTED` turns the fast path off at import if a
name is gone): ``psycopg._connection_base.BaseConnection`` and its ``_start_query`` (the
generator every cursor runs to open the transaction), ``_get_tx_start_command``,
``_check_connection_ok``, ``_autocommit``, ``_pipeline``, ``pgconn._encoding`` and
``psycopg.generators.send`` / ``fetch_many``. Why: psycopg offers no public hook to add to its
``BEGIN``; doing it from SQLAlchemy costs a round trip of its own.

**Fail closed.** The binding is *armed* on the connection when a tenant session's transaction
begins (``after_begin``) and the connection is idle, and *disarmed* by ``commit()``,
``rollback()`` (which the pool's reset-on-return also calls) and pool check-in. While armed,
every ``BEGIN`` from ``_start_query`` carries it; autocommit is refused. A transaction opened
any other way simply has no binding, and the database shows it nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from psycopg import errors as e
from psycopg import generators, pq

try:
    from psycopg._connection_base import BaseConnection

    _HAS_BASE = True
except ImportError:  # a psycopg that moved it: no fast path (SUPPORTED is False), never an error
    BaseConnection = psycopg.Connection  # type: ignore[misc]
    _HAS_BASE = False
from sqlalchemy import Engine, event

from tenancy.postgres.binding import (
    BIND_SQL,
    RESET_SQL,
    TAINTED,
    bind_parameters,
    planted_message,
    session_state,
)

__all__ = [
    "SUPPORTED",
    "AsyncTenantBeginConnection",
    "PlantedRoleSettings",
    "TaintedConnection",
    "TenantBeginConnection",
    "arm",
    "arm_commands",
    "checked_backend",
    "install",
]

_IDLE = pq.TransactionStatus.IDLE
_ACTIVE = pq.TransactionStatus.ACTIVE
_COMMAND_OK = pq.ExecStatus.COMMAND_OK
_TUPLES_OK = pq.ExecStatus.TUPLES_OK
_FATAL_ERROR = pq.ExecStatus.FATAL_ERROR
_PIPELINE_SYNC = pq.ExecStatus.PIPELINE_SYNC
_BIND = BIND_SQL.encode("ascii")
# Sent before psycopg's BEGIN, committed on their own (see the module doc).
_RESET = (b"BEGIN", *(sql.encode("ascii") for sql in RESET_SQL), b"COMMIT")
# The statements armed on a connection: (SQL, bound parameters or None), sent after BEGIN.
_Binding = tuple[tuple[bytes, list[bytes | None] | None], ...]
# What the server must answer to the reset, psycopg's BEGIN and a binding's statements, in order;
# computed when the binding is armed (once per shape), not in every transaction.
_Expected = tuple[pq.ExecStatus, ...]
_EXPECTED: dict[tuple[bool, ...], _Expected] = {}


def _expected(binding: _Binding) -> _Expected:
    shape = tuple(sql.startswith(b"SELECT") for sql, _ in binding)
    found = _EXPECTED.get(shape)
    if found is None:
        found = _EXPECTED[shape] = (
            *(_COMMAND_OK for _ in _RESET),
            _COMMAND_OK,
            *(_TUPLES_OK if select else _COMMAND_OK for select in shape),
        )
    return found


_NEEDED = ("_start_query", "_get_tx_start_command", "_check_connection_ok")
SUPPORTED: bool = (
    _HAS_BASE
    and all(hasattr(BaseConnection, name) for name in _NEEDED)
    and hasattr(generators, "send")
    and hasattr(generators, "fetch_many")
)
"""Whether this psycopg has the private hooks the fast path needs (else: separate statement)."""


class TaintedConnection(e.OperationalError):
    """SQL left state on this connection that a later checkout could use; it was closed.

    Never reaches the application: :mod:`tenancy.orm.translate` discards that one connection
    (not the pool, as a plain disconnect would) and raises :class:`~tenancy.CrossTenantAccess`.
    """


class PlantedRoleSettings(e.ProgrammingError):
    """The runtime role has role-level settings SQL could have planted; the transaction is refused.

    :mod:`tenancy.orm.translate` turns it into :class:`~tenancy.ConfigurationError` (the message
    names the settings and the fix). The connection was closed (its backend may have started
    with the settings, which RESET ALL restores); the translation discards that one connection.
    """


# The override below is a plain function shared by the sync and async classes (a mixin base
# would change the instance layout and forbid adopting plain connections by class swap).
# It calls psycopg's own implementation on BaseConnection, where both classes get it.


def _start_query(self: Any) -> Any:  # PQGen[None]
    armed: tuple[_Binding, _Expected] | None = self._tenancy_binding
    if armed is None:
        return (yield from BaseConnection._start_query(self))
    binding, expected = armed
    if self._autocommit:
        raise e.ProgrammingError(
            "tenancy: the connection was switched to autocommit inside a tenant transaction; "
            "refusing to run a statement without the tenant binding"
        )
    if self.pgconn.transaction_status != _IDLE:
        return None
    if self._pipeline:
        raise e.ProgrammingError("tenancy: a tenant transaction cannot begin in psycopg pipeline mode")
    self._check_connection_ok()
    results = yield from _begin_bound(self.pgconn, BaseConnection._get_tx_start_command(self), binding)
    statuses = tuple(r.status for r in results)
    if statuses != expected:
        for result in results:
            if result.status == _FATAL_ERROR:
                raise e.error_from_result(result, encoding=self.pgconn._encoding)
        raise e.InternalError("tenancy: unexpected results from BEGIN and the tenant binding")
    # The binding's last statement ends with the session check's answer (binding.session_state).
    last = results[-1]
    state = session_state(last.get_value(0, last.nfields - 1), self.pgconn.backend_pid)
    if state.planted is not None:
        # This backend may have started with the settings: never use it again (as below).
        self.pgconn.finish()
        raise PlantedRoleSettings(planted_message(state.planted))
    if state.tainted:
        # Never run anything on it: close it; translate.py discards this connection only.
        self.pgconn.finish()
        raise TaintedConnection(TAINTED)
    # This backend passed the role-settings check right after the reset: the next binding names
    # it, and the check skips that part while the same backend answers (binding.CHECK_FUNCTION).
    self._tenancy_backend = None if state.backend is None else state.backend.encode("ascii")
    return None


def _begin_bound(pgconn: Any, begin: bytes, binding: _Binding) -> Any:  # PQGen[list]
    # The reset, BEGIN and the binding's statements in one libpq pipeline, one Sync: one round
    # trip. (A Sync after the reset would flush it on its own, and end PgBouncer's transaction.)
    pgconn.enter_pipeline_mode()
    results: list[Any] = []
    send = pgconn.send_query_params
    try:
        for statement in _RESET:
            send(statement, None)
        send(begin, None)
        for statement, params in binding:
            send(statement, params)
        pgconn.pipeline_sync()
        yield from generators.send(pgconn)
        for _ in range(len(_RESET) + len(binding) + 2):  # each statement's results, then the Sync
            results += yield from generators.fetch_many(pgconn)
        pgconn.exit_pipeline_mode()
    except BaseException as exc:
        _abandon_pipeline(pgconn)
        failed = [r for r in results if r.status == _FATAL_ERROR]
        if failed and isinstance(exc, psycopg.Error):
            # The server's own reason ("terminating connection due to administrator command",
            # PgBouncer's "server conn crashed?") says more than libpq's pipeline complaint.
            raise e.error_from_result(failed[0], encoding=pgconn._encoding) from None
        raise
    return [r for r in results if r.status != _PIPELINE_SYNC]


def _abandon_pipeline(pgconn: Any) -> None:
    # Leave pipeline mode if nothing is pending. If something is (the server died mid-pipeline;
    # through PgBouncer the client socket even stays open, its Sync never answered), no later
    # statement can run: psycopg's ROLLBACK would fail ("PQsendQuery not allowed in pipeline
    # mode") and the pool could neither reset nor reuse the connection. Close it, so the
    # caller sees a closed connection (SQLAlchemy: a disconnect) and the pool discards it.
    try:
        pgconn.exit_pipeline_mode()
    except psycopg.Error:
        pgconn.finish()


class TenantBeginConnection(psycopg.Connection[Any]):
    """A psycopg connection whose ``BEGIN`` can carry the tenant binding (see the module doc)."""

    _tenancy_binding: tuple[_Binding, _Expected] | None = None
    _tenancy_backend: bytes | None = None  # the backend that passed the role-settings check
    _start_query = _start_query

    def commit(self) -> None:
        """Commit, and forget the tenant binding (the next transaction re-arms it)."""
        self._tenancy_binding = None
        super().commit()

    def rollback(self) -> None:
        """Roll back, and forget the tenant binding (the next transaction re-arms it).

        A connection with a command still in progress (see :func:`_close_if_stuck`) is closed
        instead, and the rollback raises ``OperationalError``: a disconnect to SQLAlchemy.
        """
        self._tenancy_binding = None
        _close_if_stuck(self)
        super().rollback()


class AsyncTenantBeginConnection(psycopg.AsyncConnection[Any]):
    """The :class:`TenantBeginConnection` of ``AsyncSession`` s (psycopg's async connection)."""

    _tenancy_binding: tuple[_Binding, _Expected] | None = None
    _tenancy_backend: bytes | None = None  # the backend that passed the role-settings check
    _start_query = _start_query

    async def commit(self) -> None:
        """Commit, and forget the tenant binding (the next transaction re-arms it)."""
        self._tenancy_binding = None
        await super().commit()

    async def rollback(self) -> None:
        """Roll back, and forget the tenant binding (the next transaction re-arms it); a
        connection with a command still in progress is closed instead (as in the sync class)."""
        self._tenancy_binding = None
        _close_if_stuck(self)
        await super().rollback()


def _close_if_stuck(conn: Any) -> None:
    # A command still in progress at rollback time is one nobody will ever finish: raw SQL
    # that ran `COPY ... TO STDOUT` through execute() (psycopg refuses it, with the COPY already
    # streaming on the server). psycopg's ROLLBACK then fails ("another command is already in
    # progress"), which SQLAlchemy does not take for a disconnect: the connection stayed checked
    # out, and a tenant could hold the pool's slots with one statement each. Closed, the
    # rollback fails as a disconnect, and the pool discards the connection.
    if conn.pgconn.transaction_status == _ACTIVE and conn._pipeline is None:
        conn.pgconn.finish()


_OURS = (TenantBeginConnection, AsyncTenantBeginConnection)
_ADOPT = {psycopg.Connection: TenantBeginConnection, psycopg.AsyncConnection: AsyncTenantBeginConnection}


def arm(driver_connection: object, tenant: uuid.UUID, seal: str) -> bool:
    """Make the next ``BEGIN`` on *driver_connection* carry *tenant*'s sealed binding.

    Returns False (and changes nothing) when it cannot: not a :class:`TenantBeginConnection`,
    already inside a transaction (savepoints, a joined outer transaction), pipeline mode or
    autocommit. The caller then sends the setting as a statement of its own.
    """
    instance_id, tenant_seal = bind_parameters(tenant, seal)
    backend = getattr(driver_connection, "_tenancy_backend", None)
    params = [instance_id.encode("ascii"), tenant_seal.encode("ascii"), backend]
    return _arm(driver_connection, ((_BIND, params),))


def checked_backend(driver_connection: object) -> str | None:
    """The backend *driver_connection*'s last tenant transaction found clean of role settings
    (for :func:`~tenancy.postgres.binding.clean_sql`), or None."""
    if not isinstance(driver_connection, _OURS) or driver_connection._tenancy_backend is None:
        return None
    return driver_connection._tenancy_backend.decode("ascii", "replace")


def arm_commands(driver_connection: object, commands: tuple[bytes, ...]) -> bool:
    """Like :func:`arm`, with parameterless statements (Citus: ``SET LOCAL``, which Citus
    forwards to the shards; see :mod:`tenancy.postgres.citus_binding`)."""
    return _arm(driver_connection, tuple((command, None) for command in commands))


def _arm(driver_connection: object, binding: _Binding) -> bool:
    if not SUPPORTED or not isinstance(driver_connection, _OURS):
        return False
    if driver_connection.autocommit or driver_connection._pipeline is not None:
        return False
    if driver_connection.pgconn.transaction_status != _IDLE:
        return False
    driver_connection._tenancy_binding = (binding, _expected(binding))
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
    # Listeners on this engine's pool only: engines tenancy was not given are never touched.
    if not event.contains(engine, "connect", _adopt):
        event.listen(engine, "connect", _adopt)
    if not event.contains(engine, "checkin", _disarm_on_checkin):
        event.listen(engine, "checkin", _disarm_on_checkin)
    return True


def _disarm_on_checkin(dbapi_connection: Any, connection_record: Any) -> None:
    # Belt and braces: commit()/rollback() already disarm, and the pool's reset-on-return
    # calls rollback(); this also covers pools built with reset_on_return=None.
    driver = _driver(dbapi_connection)
    if isinstance(driver, _OURS):
        driver._tenancy_binding = None
