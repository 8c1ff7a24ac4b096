"""A throwaway Citus cluster for the tests: one coordinator and two workers on loopback.

Needs the Citus extension installed for the local PostgreSQL (``citus.control`` in the
server's extension directory, ``citus.so`` in its library directory); :func:`citus_missing`
says why a cluster cannot be started (the suite reports it in its summary, never silently).

One ``initdb`` is copied for the three nodes (initdb is the slow part). Every node gets the
database with the extension; the coordinator then registers itself and the two workers, and
creates the roles (an owner with BYPASSRLS that owns the database, and a plain runtime role),
which Citus creates on every node.
Clusters run as the ``postgres`` OS user when the tests run as root (initdb refuses root).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from tenancy.postgres.timeouts import DEFAULT_TIMEOUTS, timeout_statement
from tenancy.testing.postgres import sqlalchemy_url

DBNAME = "tenancy"
OWNER = "tenancy_owner"
RUNTIME = "tenancy_app"


def _pg_bindir() -> Path | None:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    found = shutil.which("pg_config")
    if found:
        out = subprocess.run([found, "--bindir"], capture_output=True, text=True, check=False)
        path = Path(out.stdout.strip())
        if (path / "initdb").exists():
            return path
    return None


def _pg_config(bindir: Path, flag: str) -> Path | None:
    pg_config = bindir / "pg_config"
    if not pg_config.exists():
        version = bindir.parent.name
        sharedir, libdir = Path(f"/usr/share/postgresql/{version}"), bindir.parent / "lib"
        return {"--sharedir": sharedir, "--pkglibdir": libdir}.get(flag)
    out = subprocess.run([str(pg_config), flag], capture_output=True, text=True, check=False)
    return Path(out.stdout.strip()) if out.returncode == 0 else None


def citus_missing() -> str | None:
    """Why no Citus cluster can be started here, or ``None`` when one can."""
    bindir = _pg_bindir()
    if bindir is None:
        return "no PostgreSQL server binaries (initdb, pg_ctl) found"
    sharedir, libdir = _pg_config(bindir, "--sharedir"), _pg_config(bindir, "--pkglibdir")
    if sharedir is None or not (sharedir / "extension" / "citus.control").exists():
        return f"the Citus extension is not installed for the PostgreSQL in {bindir.parent}"
    if libdir is None or not (libdir / "citus.so").exists():
        return f"citus.so is missing from {libdir}"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Node:
    """One running node: its port and data directory."""

    port: int
    datadir: Path

    def url(self, user: str = "postgres", dbname: str = DBNAME) -> str:
        """A libpq URL of this node."""
        return f"postgresql://{user}@127.0.0.1:{self.port}/{dbname}"


@dataclass(frozen=True)
class Cluster:
    """A running coordinator with two workers, the ``tenancy`` database on each."""

    coordinator: Node
    workers: tuple[Node, ...]
    owner: str = OWNER
    runtime: str = RUNTIME

    @property
    def nodes(self) -> tuple[Node, ...]:
        """Every node, coordinator first."""
        return (self.coordinator, *self.workers)

    @property
    def superuser_url(self) -> str:
        """libpq URL of the coordinator's database as the superuser."""
        return self.coordinator.url()

    @property
    def admin_url(self) -> str:
        """SQLAlchemy URL of the coordinator as the owner (BYPASSRLS, owns the tables)."""
        return sqlalchemy_url(self.coordinator.url(self.owner))

    @property
    def runtime_url(self) -> str:
        """SQLAlchemy URL of the coordinator as the plain runtime role."""
        return sqlalchemy_url(self.coordinator.url(self.runtime))


class _Runner:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.prefix, str(self.bindir / tool), *args], check=True, capture_output=True)


def _prepare_node(node: Node) -> None:
    with psycopg.connect(node.url(dbname="postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DBNAME)))
    with psycopg.connect(node.url(), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION citus")


def _create_roles(cluster: Cluster) -> None:
    # Created on the coordinator once the workers are in: Citus creates them on every node and
    # records them as distributed objects. Roles made on each node by hand are not recorded,
    # and Citus then re-creates them (ALTER ROLE ... BYPASSRLS) as whoever first needs them on
    # the workers, e.g. the owner creating a function, which only a superuser may do.
    owner, runtime = sql.Identifier(cluster.owner), sql.Identifier(cluster.runtime)
    with psycopg.connect(cluster.superuser_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER BYPASSRLS").format(owner))
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE").format(runtime)
        )
        # As the README's Citus guide says (tenancy check reports it missing there): the seal
        # travels in SET LOCAL text, which other backends of the role must not be able to read.
        conn.execute(sql.SQL("ALTER ROLE {} SET track_activities = off").format(runtime))
        for setting, value in DEFAULT_TIMEOUTS.items():  # as the README's setup does
            conn.execute(timeout_statement(runtime.as_string(conn), setting, value).encode())
    for node in cluster.nodes:
        with psycopg.connect(node.url(), autocommit=True) as conn:
            conn.execute("SET citus.enable_ddl_propagation = off")  # each node does its own
            conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(DBNAME), owner))
            conn.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(owner))
            conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(runtime))


def _wait(node: Node) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(node.url(dbname="postgres"), connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@contextmanager
def citus_cluster(workers: int = 2) -> Iterator[Cluster]:
    """Start a coordinator and *workers* workers; stop them and remove their files afterwards."""
    bindir = _pg_bindir()
    if bindir is None or citus_missing():
        raise RuntimeError(citus_missing() or "no PostgreSQL binaries")
    runner = _Runner(bindir)
    root = Path(tempfile.mkdtemp(prefix="tenancy-citus-"))
    if runner.prefix:
        shutil.chown(root, "postgres")
    template = root / "template"
    runner.run("initdb", "-D", str(template), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
    with open(template / "postgresql.conf", "a") as conf:
        conf.write(
            "\nshared_preload_libraries = 'citus'\nlisten_addresses = '127.0.0.1'\n"
            "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            "max_connections = 200\nshared_buffers = 32MB\n"
        )
    nodes = []
    for name in ["coordinator", *(f"worker{n}" for n in range(1, workers + 1))]:
        datadir = root / name
        subprocess.run(["cp", "-a", str(template), str(datadir)], check=True)
        nodes.append(Node(port=_free_port(), datadir=datadir))
    started: list[Node] = []
    try:
        for node in nodes:
            runner.run(
                "pg_ctl",
                "-D",
                str(node.datadir),
                "-w",
                "-l",
                str(node.datadir / "log"),
                "-o",
                f"-p {node.port} -k {node.datadir}",
                "start",
            )
            started.append(node)
            _wait(node)
        for node in nodes:
            _prepare_node(node)
        coordinator, *rest = nodes
        with psycopg.connect(coordinator.url(), autocommit=True) as conn:
            conn.execute("SELECT citus_set_coordinator_host('127.0.0.1', %s)", (coordinator.port,))
            for worker in rest:
                conn.execute("SELECT citus_add_node('127.0.0.1', %s)", (worker.port,))
        cluster = Cluster(coordinator=coordinator, workers=tuple(rest))
        _create_roles(cluster)
        yield cluster
    finally:
        for node in started:
            subprocess.run(
                [*runner.prefix, str(bindir / "pg_ctl"), "-D", str(node.datadir), "-m", "immediate", "stop"],
                capture_output=True,
                check=False,
            )
        shutil.rmtree(root, ignore_errors=True)
