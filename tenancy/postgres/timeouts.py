"""Timeouts on the runtime role: what bounds a tenant that locks, sleeps or idles in a transaction.

``tenancy grant`` sets them as role-level defaults (``ALTER ROLE ... SET``), which every new
connection of the runtime role starts with and ``RESET ALL`` returns to; ``tenancy check``
reports one that is missing or ``0`` (off). They are defaults, not limits: SQL in a tenant
session can ``SET`` them for its own session (README: Known limits).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from tenancy.errors import ConfigurationError

__all__ = [
    "DEFAULT_TIMEOUTS",
    "is_off",
    "role_timeouts",
    "set_role_timeouts",
    "timeout_statement",
    "validate_timeout",
]

DEFAULT_TIMEOUTS: Mapping[str, str] = {
    # A tenant statement waiting on another's LOCK TABLE (or a long row lock) gives up after 5 s
    # instead of queueing every tenant behind it; ORM writes hold row locks for milliseconds.
    "lock_timeout": "5s",
    # One web request's statement; reports and backfills run as the owner, which this leaves alone.
    "statement_timeout": "30s",
    # A transaction left open (a hung request, or one holding a lock on purpose) ends after a
    # minute idle; longer than a statement so a request may wait on the network between them.
    "idle_in_transaction_session_timeout": "60s",
}
"""What ``tenancy grant`` sets on the runtime role when it has no value of its own."""

# PostgreSQL's time units for these settings; a bare number is milliseconds.
_VALUE = re.compile(r"^\s*(\d{1,9})\s*(us|ms|s|min|h|d)?\s*$")


def validate_timeout(name: str, value: str) -> str:
    """Return *value* normalised (``"5s"``, ``"200ms"``, ``"0"``) or raise ConfigurationError."""
    match = _VALUE.match(value)
    if name not in DEFAULT_TIMEOUTS or match is None:
        raise ConfigurationError(
            f"{name} = {value!r} is not a timeout: use a whole number with a unit, e.g. "
            f"{DEFAULT_TIMEOUTS.get(name, '5s')!r} or '200ms' ('0' turns it off, which check reports)"
        )
    number = int(match.group(1))
    return "0" if number == 0 else f"{number}{match.group(2) or 'ms'}"


def is_off(value: str | None) -> bool:
    """True when *value* (as ``pg_db_role_setting`` or ``pg_settings`` shows it) means no timeout."""
    if value is None:
        return True
    match = _VALUE.match(value.strip("'\""))
    return match is not None and int(match.group(1)) == 0


def timeout_statement(role_sql: str, name: str, value: str) -> str:
    """``ALTER ROLE <role_sql> SET name = 'value'`` (*role_sql* quoted, or ``CURRENT_USER``)."""
    return f"ALTER ROLE {role_sql} SET {name} = '{validate_timeout(name, value)}'"


def role_timeouts(connection: Connection, role: str) -> dict[str, str]:
    """The timeouts *role* has as role-level defaults here (for every database or this one)."""
    rows = connection.execute(
        text(
            "SELECT s.setdatabase <> 0, cfg FROM pg_db_role_setting s"
            " CROSS JOIN LATERAL unnest(s.setconfig) AS cfg"
            " WHERE s.setrole = (SELECT oid FROM pg_roles WHERE rolname = :r)"
            " AND s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))"
            " ORDER BY 1"  # the database-specific value, read last, wins (PostgreSQL's order)
        ),
        {"r": role},
    ).all()
    found: dict[str, str] = {}
    for _, cfg in rows:
        name, _, value = str(cfg).partition("=")
        if name in DEFAULT_TIMEOUTS:
            found[name] = value
    return found


def set_role_timeouts(
    connection: Connection, role: str, role_sql: str, wanted: Mapping[str, str] | None = None
) -> list[str]:
    """Give *role* the timeouts in *wanted*, and the defaults for those it has none of.

    A timeout the role already has and *wanted* does not name is kept (a value chosen with
    ``tenancy grant --statement-timeout`` survives the grant every migration repeats). Returns
    the statements the current user may not run (``ALTER ROLE`` on another role needs
    CREATEROLE): the caller runs them as the role itself or names them to a superuser.
    """
    wanted = {name: validate_timeout(name, value) for name, value in (wanted or {}).items()}
    current = role_timeouts(connection, role)
    left = []
    for name, default in DEFAULT_TIMEOUTS.items():
        value = wanted.get(name) or (None if name in current else default)
        if value is None or current.get(name) == value:
            continue
        statement = timeout_statement(role_sql, name, value)
        try:
            with connection.begin_nested():
                connection.execute(text(statement))
        except DBAPIError:
            left.append(statement)
    return left
