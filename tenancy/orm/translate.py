"""Translate database errors caused by tenant isolation into tenancy errors."""

from __future__ import annotations

import re
import sqlite3

from sqlalchemy import Engine, event
from sqlalchemy.engine import ExceptionContext

from tenancy.errors import ConfigurationError, CrossTenantAccess, CrossTenantWrite, DuplicateInTenant
from tenancy.postgres.binding import CHECK_FUNCTION, TAINTED
from tenancy.postgres.psycopg_begin import PlantedRoleSettings, TaintedConnection

__all__ = ["install_error_translation"]

# SQLSTATE 42501 (insufficient_privilege) with this text comes only from a policy's
# WITH CHECK: a write that would leave a row outside the session's tenant.
_RLS_VIOLATION = "violates row-level security policy"
_TABLE = re.compile(r'policy for table "([^"]+)"')
_CHECK_NAME = CHECK_FUNCTION.rsplit(".", 1)[1]


def _translate(context: ExceptionContext) -> BaseException | None:
    orig = context.original_exception
    if isinstance(orig, TaintedConnection):
        # The fast path closed a connection SQL had tainted. A closed connection is a
        # disconnect, which by default invalidates the whole pool: every tenant would pay a
        # reconnect for one tenant's PREPARE. Discard this one connection only.
        context.is_disconnect = True
        context.invalidate_pool_on_disconnect = False
        return CrossTenantAccess(TAINTED)
    if isinstance(orig, PlantedRoleSettings):
        # Closed by the fast path (its backend may carry the settings): discard it alone.
        context.is_disconnect = True
        context.invalidate_pool_on_disconnect = False
        return ConfigurationError(str(orig))
    if getattr(orig, "sqlstate", None) in ("42883", "42501") and _CHECK_NAME in str(orig):
        # A database not migrated to the session check, or a runtime role not granted it.
        return ConfigurationError(
            f"tenancy: tenant transactions need {CHECK_FUNCTION}() ({_CHECK_NAME} is missing or the "
            "runtime role may not execute it): run `alembic upgrade heads`, then `tenancy grant`"
        )
    if getattr(orig, "sqlstate", None) == "42501" and _RLS_VIOLATION in str(orig):
        match = _TABLE.search(str(orig))
        table = match.group(1) if match else "a tenant table"
        error = CrossTenantWrite(
            f"the database refused a write to {table}: the row would belong to another tenant "
            "(or no tenant is set)"
        )
        return error
    if getattr(orig, "sqlstate", None) == "23505" or _is_sqlite_unique(orig):
        constraint = getattr(getattr(orig, "diag", None), "constraint_name", None)
        duplicate = DuplicateInTenant(
            f"duplicate value for unique constraint {constraint or '(unknown)'} in this tenant",
            constraint=constraint,
        )
        return duplicate
    return None


def _is_sqlite_unique(orig: BaseException | None) -> bool:
    # sqlite3 has no SQLSTATE; its unique and primary-key violations read like this.
    return isinstance(orig, sqlite3.IntegrityError) and str(orig).startswith("UNIQUE constraint failed")


def install_error_translation(engine: Engine) -> None:
    """Make *engine* raise tenancy errors for what isolation causes in the database.

    SQLAlchemy raises the returned error ``from`` the driver's exception (``__cause__``).

    A connection the tenant binding found tainted (see :mod:`tenancy.postgres.psycopg_begin`) is
    discarded alone, not with the rest of the pool, and raises :class:`~tenancy.CrossTenantAccess`.
    RLS ``WITH CHECK`` violations become :class:`~tenancy.CrossTenantWrite`; unique
    violations :class:`~tenancy.DuplicateInTenant` (the runtime engine only serves tenant
    sessions, whose uniques are per tenant).

    Idempotent: one listener per engine, however many factories use it.
    """
    if not event.contains(engine, "handle_error", _translate):
        event.listen(engine, "handle_error", _translate)
