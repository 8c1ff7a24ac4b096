"""Find or start a PostgreSQL server for tests, and make databases with the right roles.

Tests of isolation mean nothing as a superuser (superusers skip row-level security), so
:func:`fresh_database` gives each database an owner role (BYPASSRLS: migrations, sync, admin)
and a plain runtime role (tenant sessions). The server is never skipped silently.

Server order: ``TENANCY_TEST_PG_URL`` (a superuser URL), then 127.0.0.1:5432 as ``postgres``,
then a throwaway cluster made with the local ``initdb``/``pg_ctl`` in a temporary
directory. If none works, the suite fails with a message that says how to get one.
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import sql

from tenancy.db.timeouts import DEFAULT_TIMEOUTS, timeout_statement

__all__ = ["HOW_TO_GET_ONE", "Database", "fresh_database", "server_url", "sqlalchemy_url"]

HOW_TO_GET_ONE = (
    "tenancy's tests need PostgreSQL (RLS cannot be tested without it). Either set "
    "TENANCY_TEST_PG_URL to a superuser URL (postgresql://postgres@host:5432/postgres), "
    "run a server on 127.0.0.1:5432 that trusts the 'postgres' user, or install the server "
    "binaries (Debian: apt-get install postgresql) so the suite can start a throwaway cluster."
)


def _can_connect(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3, autocommit=True) as conn:
            row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
            return bool(row and row[0])
    except psycopg.Error:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


def _start_throwaway() -> str:
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise RuntimeError(HOW_TO_GET_ONE)
    datadir = tempfile.mkdtemp(prefix="tenancy-pg-")
    port = _free_port()
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the cluster as the 'postgres' user
        shutil.chown(datadir, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*prefix, initdb, "-D", datadir, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *prefix,
            pg_ctl,
            "-D",
            datadir,
            "-w",
            "-l",
            os.path.join(datadir, "log"),
            "-o",
            f"-p {port} -k {datadir} -c listen_addresses=127.0.0.1",
            "start",
        ],
        check=True,
        capture_output=True,
    )

    def stop() -> None:
        subprocess.run(
            [*prefix, pg_ctl, "-D", datadir, "-m", "immediate", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(datadir, ignore_errors=True)

    atexit.register(stop)
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


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
        elif _can_connect("postgresql://postgres@127.0.0.1:5432/postgres"):
            _server_url = "postgresql://postgres@127.0.0.1:5432/postgres"
        else:
            _server_url = _start_throwaway()
            deadline = time.monotonic() + 30
            while not _can_connect(_server_url):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the throwaway PostgreSQL did not start. {HOW_TO_GET_ONE}")
                time.sleep(0.2)
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
    head, _, rest = url.partition("://")
    hostpart = rest.split("@", 1)[1] if "@" in rest else rest
    hostpart = hostpart.split("/", 1)[0]
    return f"{head}://{user}@{hostpart}/{dbname}"


@contextmanager
def fresh_database(prefix: str = "tenancy_test") -> Iterator[Database]:
    """Create a database owned by a new BYPASSRLS owner role, plus a plain runtime role.

    Both are dropped afterwards. Role names are unique per call (roles are cluster-wide).
    """
    root = server_url()
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
        with psycopg.connect(root, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            for role in (runtime, owner):
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
