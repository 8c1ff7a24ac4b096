"""A sync worker's database connection: list, claim, write and commit, nothing else.

A worker's transaction holds one tenant: it starts with the claim (the row lock), and the
write of the result commits it (see :mod:`tenancy.tenant_sync.workers`). :class:`WorkerDb`
is that connection, in two forms with the same SQL (built by
:mod:`tenancy.tenant_sync.store`), the same round trips (``BEGIN``, claim, ``UPDATE``,
``COMMIT``) and the same effect:

- :class:`PsycopgDb`, on PostgreSQL through psycopg 3: the statements run on the psycopg
  connection itself. Through SQLAlchemy's execution layers (statement cache lookup,
  execution context, result object, row processors), each of the sync's statements cost
  about as much CPU as psycopg's own work, in a job whose throughput at 32 workers is bound
  by one GIL. The statements are still SQLAlchemy's, compiled once per dialect, and
  SQLAlchemy's bind processors turn the values into parameters (so a JSON ``None`` is JSON
  ``null``, as before); errors are raised as SQLAlchemy raises them
  (:class:`~sqlalchemy.exc.DBAPIError` around psycopg's).
- :class:`SqlAlchemyDb` everywhere else: SQLite, other drivers, and an engine someone
  watches (``echo``, SQL logging at INFO, execution or ``handle_error`` listeners, which
  the psycopg path would bypass).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Dialect, Engine
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from tenancy.tenant_sync.store import (
    Selection,
    claim_by_key,
    list_candidates,
    listing_statement,
    update_statement,
    update_tenant,
)

if TYPE_CHECKING:
    import psycopg

__all__ = ["PsycopgDb", "SqlAlchemyDb", "WorkerDb", "worker_db"]

# Connection events the psycopg path would not fire: an engine with listeners on any of
# them (or on the dialect's handle_error) keeps SQLAlchemy's path.
_EXECUTION_EVENTS = (
    "before_execute",
    "after_execute",
    "before_cursor_execute",
    "after_cursor_execute",
    "begin",
    "commit",
    "rollback",
)


class WorkerDb:
    """One worker's connection. A transaction starts with the first statement after the
    last commit or rollback. Errors are SQLAlchemy's (:class:`~sqlalchemy.exc.DBAPIError`)."""

    def list_candidates(self, selection: Selection, phase: int, *, limit: int) -> list[uuid.UUID]:
        """:func:`~tenancy.tenant_sync.store.list_candidates` (no lock)."""
        raise NotImplementedError

    def claim(self, selection: Selection, instance_id: uuid.UUID) -> dict[str, Any] | None:
        """:func:`~tenancy.tenant_sync.store.claim_by_key`: the locked row's claimed columns."""
        raise NotImplementedError

    def update(self, instance_id: uuid.UUID, values: Mapping[str, Any]) -> None:
        """``UPDATE tenants SET <values>`` for the tenant (in the transaction of its claim)."""
        raise NotImplementedError

    def commit(self) -> None:
        """End the transaction, keeping what it wrote."""
        raise NotImplementedError

    def rollback(self) -> None:
        """End the transaction, if one is open, writing nothing."""
        raise NotImplementedError


@contextmanager
def worker_db(engine: Engine) -> Iterator[WorkerDb]:
    """A connection of *engine* for one worker: :class:`PsycopgDb` where it can be."""
    with engine.connect() as conn:
        yield PsycopgDb(conn) if _direct(engine) else SqlAlchemyDb(conn)


def _direct(engine: Engine) -> bool:
    """Whether *engine*'s connections can be used without SQLAlchemy's execution layers."""
    if engine.dialect.name != "postgresql" or engine.dialect.driver != "psycopg":
        return False
    if engine.echo or logging.getLogger("sqlalchemy.engine.Engine").isEnabledFor(logging.INFO):
        return False
    if engine.dialect.dispatch.handle_error:
        return False
    return not any(getattr(engine.dispatch, name) for name in _EXECUTION_EVENTS)


class SqlAlchemyDb(WorkerDb):
    """The statements through a SQLAlchemy :class:`~sqlalchemy.Connection` (which begins a
    transaction by itself)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def list_candidates(self, selection: Selection, phase: int, *, limit: int) -> list[uuid.UUID]:
        return list_candidates(self.conn, selection, phase, limit=limit)

    def claim(self, selection: Selection, instance_id: uuid.UUID) -> dict[str, Any] | None:
        row = claim_by_key(self.conn, selection, instance_id)
        return None if row is None else dict(row._mapping)

    def update(self, instance_id: uuid.UUID, values: Mapping[str, Any]) -> None:
        update_tenant(self.conn, instance_id, values)

    def commit(self) -> None:
        self.conn.commit()

    def rollback(self) -> None:
        self.conn.rollback()


@dataclasses.dataclass(frozen=True)
class _Compiled:
    """A statement compiled for one dialect: its SQL and how to turn values into parameters."""

    sql: str
    defaults: dict[str, Any]  # every parameter: the statement's own values, None for the others
    required: frozenset[str]  # parameters with no value in the statement
    processors: dict[str, Callable[[Any], Any]]  # SQLAlchemy's bind processor per parameter

    def parameters(self, values: Mapping[str, Any]) -> dict[str, Any]:
        if not self.required <= values.keys():
            raise ValueError(f"missing parameters: {sorted(self.required - values.keys())}")
        params = {**self.defaults, **values}
        for name, process in self.processors.items():
            params[name] = process(params[name])
        return params


def _compile(stmt: ClauseElement, dialect: Dialect, *, expanded: bool = False) -> _Compiled:
    """*stmt* as SQL text for psycopg, and SQLAlchemy's conversions of its parameters.

    ``expanded``: render ``IN`` lists as one parameter per value (named ``<name>_<n>`` after the
    list's parameter, as SQLAlchemy names them when it expands a list itself).
    """
    options = {"render_postcompile": expanded}
    compiled = cast(SQLCompiler, stmt.compile(dialect=dialect, compile_kwargs=options))
    defaults = dict(compiled.params)
    required: set[str] = set()
    processors: dict[str, Callable[[Any], Any]] = {}
    for name in defaults:
        bind = compiled.binds.get(name)
        if bind is None:  # one value of an expanded IN list: the list's parameter says its type
            match = re.fullmatch(r"(.+)_\d+", name)
            bind = compiled.binds.get(match.group(1)) if match else None
            if bind is None:
                raise AssertionError(f"no bind parameter for {name!r}")  # pragma: no cover
        elif bind.required:
            required.add(name)
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors[name] = process
    return _Compiled(compiled.string, defaults, frozenset(required), processors)


@functools.lru_cache(maxsize=64)
def _compiled(stmt: ClauseElement, dialect: Dialect) -> _Compiled:
    # Keyed by the statement object: the claim and update statements are built once per
    # mode and per set of columns (see store), so each is compiled once per process.
    return _compile(stmt, dialect)


class PsycopgDb(WorkerDb):
    """The statements on the psycopg connection under a SQLAlchemy connection, which it never
    executes on (so SQLAlchemy holds no transaction of its own; the pool's reset on return
    rolls back whatever a failure left open). A connection lost to a disconnect is invalidated
    and the next statement runs on a new one, as through SQLAlchemy."""

    def __init__(self, conn: Connection) -> None:
        import psycopg
        from psycopg.rows import dict_row

        self._error: type[psycopg.Error] = psycopg.Error
        self._dict_row = dict_row
        self.conn = conn
        self._dialect = conn.dialect
        self._hide_parameters = conn.engine.hide_parameters
        self._connect()

    def _connect(self) -> None:
        self._pg = cast("psycopg.Connection[Any]", self.conn.connection.dbapi_connection)
        self._cursor = self._pg.cursor(row_factory=self._dict_row)

    def list_candidates(self, selection: Selection, phase: int, *, limit: int) -> list[uuid.UUID]:
        # The selection's values are literals of the statement: compiled anew (once a batch).
        compiled = _compile(listing_statement(selection, phase, limit=limit), self._dialect, expanded=True)
        self._execute(compiled, {})
        return [row["instance_id"] for row in self._cursor.fetchall()]

    def claim(self, selection: Selection, instance_id: uuid.UUID) -> dict[str, Any] | None:
        stmt, params = selection.by_key()
        self._execute(_compiled(stmt, self._dialect), {**params, "instance_id": instance_id})
        return self._cursor.fetchone()

    def update(self, instance_id: uuid.UUID, values: Mapping[str, Any]) -> None:
        stmt, params = update_statement(instance_id, values)
        self._execute(_compiled(stmt, self._dialect), params)

    def commit(self) -> None:
        try:
            self._pg.commit()
        except self._error as exc:
            raise self._wrapped(exc, "COMMIT", {}) from exc

    def rollback(self) -> None:
        if not self._pg.closed:
            self._pg.rollback()

    def _execute(self, compiled: _Compiled, values: Mapping[str, Any]) -> None:
        params = compiled.parameters(values)
        if self._pg.closed:
            # Invalidated after its server went away (see _wrapped): the SQLAlchemy connection
            # checks out a new one, as it does for a statement of its own.
            self._connect()
        try:
            self._cursor.execute(compiled.sql, params)
        except self._error as exc:
            raise self._wrapped(exc, compiled.sql, params) from exc

    def _wrapped(self, exc: psycopg.Error, sql: str, params: Mapping[str, Any]) -> StatementError:
        """*exc* as SQLAlchemy raises it (the :class:`~sqlalchemy.exc.DBAPIError` subclass of the
        same name: ``DataError``, ``OperationalError``...), once the transaction is rolled back
        or, if the connection is gone, it is invalidated (the pool will not hand it out again)."""
        gone = self._dialect.is_disconnect(cast(Any, exc), self.conn.connection, None) or self._pg.closed
        if gone:
            self.conn.invalidate(exc)
        else:
            try:
                self._pg.rollback()
            except self._error:
                gone = True
                self.conn.invalidate(exc)
        return DBAPIError.instance(
            sql,
            params,
            exc,
            self._error,
            hide_parameters=self._hide_parameters,
            connection_invalidated=gone,
            dialect=self._dialect,
        )
