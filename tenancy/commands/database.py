"""Database access for the commands: engines from URLs, and database errors as one line.

Every error a user can cause (a URL with an unknown scheme, a server that does not answer, a
database that is not migrated, a role that may not do the job) becomes a
:class:`~tenancy.ConfigurationError` naming the problem and the fix: ``tenancy: ...``, exit 2.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from tenancy.errors import ConfigurationError
from tenancy.settings import ADMIN_URL_VARIABLE, URL_VARIABLE, Settings, admin_url_variable, safe_url

__all__ = [
    "MIGRATE_HINT",
    "database_errors",
    "first_line",
    "make_engine",
    "owner_engine",
    "require_rls_bypass",
]

MIGRATE_HINT = "run `alembic upgrade heads` (README: Your own app)"
_NOT_ALLOWED = "42501"  # insufficient_privilege
_UNDEFINED_TABLE = "42P01"


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (drivers add SQL and hints on later lines)."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else type(cause).__name__


def make_engine(url: str, *, variable: str | None = None, **options: Any) -> Engine:
    """``create_engine`` whose refusal of a URL is one line naming *variable* (default: the admin
    URL's)."""
    variable = variable or admin_url_variable()
    try:
        return create_engine(url, **options)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise ConfigurationError(
            f"{variable}: cannot use {safe_url(url)} ({first_line(exc)}); "
            "write postgresql://USER@HOST/DB or sqlite:///FILE"
        ) from None


@contextmanager
def database_errors(url: str, *, variable: str | None = None) -> Iterator[None]:
    """Turn a database error inside the block into a one-line :class:`ConfigurationError`."""
    try:
        yield
    except DBAPIError as exc:
        raise ConfigurationError(_explain(exc, url, variable or admin_url_variable())) from None


def _explain(exc: DBAPIError, url: str, variable: str) -> str:
    code = getattr(exc.orig, "sqlstate", None)
    detail = first_line(exc)
    if code == _UNDEFINED_TABLE or "no such table" in detail:
        return f"the database {safe_url(url)} is not migrated ({detail}): {MIGRATE_HINT}"
    if code == _NOT_ALLOWED:
        owner = f"set {ADMIN_URL_VARIABLE} to the owner role's URL"
        return f"not allowed as the user of {variable} ({detail}): {owner}"
    if exc.connection_invalidated or code is None or code.startswith("08") or code == "28000":
        return f"cannot reach the database {safe_url(url)} ({variable}): {detail}"
    return f"database error ({variable}): {detail}"


def require_rls_bypass(connection: Connection, job: str) -> None:
    """Refuse to run *job* as a role that row-level security filters (it would see no tenants)."""
    if connection.dialect.name != "postgresql":
        return
    role, bypasses = connection.execute(
        text("SELECT current_user, rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user")
    ).one()
    if not bypasses:
        raise ConfigurationError(
            f"{job} connects as {role!r}, a role that row-level security filters (it would see no "
            f"tenants): set {ADMIN_URL_VARIABLE} to the owner role's URL (BYPASSRLS); "
            f"{URL_VARIABLE} is the runtime role's"
        )


@contextmanager
def owner_engine(job: str) -> Iterator[Engine]:
    """The owner role's engine for *job* (purge, export, copy): the configured admin URL, checked
    to bypass row-level security before the job starts; database errors inside the block as one
    line; disposed afterwards."""
    url = Settings.from_env().require_admin_database_url(job)
    engine = make_engine(url)
    try:
        with database_errors(url):
            with engine.connect() as connection:
                require_rls_bypass(connection, job)
            yield engine
    finally:
        engine.dispose()
