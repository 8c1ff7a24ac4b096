"""A real PgBouncer in transaction mode, started by the tests on a free port (pool size 1).

Every client of it shares one server connection, one transaction at a time: what one
checkout leaves on the backend is what the next one, of any client, inherits. The suite
fails (never skips) when ``pgbouncer`` is missing, with how to get it.
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

__all__ = ["HOW_TO_GET_PGBOUNCER", "pgbouncer"]

HOW_TO_GET_PGBOUNCER = (
    "these tests need PgBouncer (scenarios 59-68 are proven through it in transaction mode): "
    "install it (Debian: apt-get install pgbouncer; .ci/run does) so that `pgbouncer` or "
    "/usr/sbin/pgbouncer exists"
)


def _binary() -> str:
    found = shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None
    )
    if found is None:
        raise RuntimeError(HOW_TO_GET_PGBOUNCER)
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def pgbouncer(host: str, port: int, users: list[str]) -> Iterator[int]:
    """Run PgBouncer (transaction pooling, one server connection per database and user) in
    front of *host*:*port*; yields its port. *users* connect without a password (the test
    server trusts them)."""
    binary = _binary()
    workdir = tempfile.mkdtemp(prefix="tenancy-pgbouncer-")
    listen = _free_port()
    with open(os.path.join(workdir, "users.txt"), "w") as f:
        f.writelines(f'"{user}" ""\n' for user in users)
    with open(os.path.join(workdir, "pgbouncer.ini"), "w") as f:
        f.write(
            "[databases]\n"
            f"* = host={host} port={port}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {listen}\n"
            f"unix_socket_dir = {workdir}\n"
            "auth_type = trust\n"
            f"auth_file = {workdir}/users.txt\n"
            "pool_mode = transaction\n"
            "default_pool_size = 1\nmin_pool_size = 0\nreserve_pool_size = 0\n"
            "max_client_conn = 50\n"
            "ignore_startup_parameters = extra_float_digits,options\n"
            f"logfile = {workdir}/pgbouncer.log\n"
        )
    prefix: list[str] = []
    if os.geteuid() == 0:  # pgbouncer refuses to run as root
        shutil.chown(workdir, "postgres")
        for name in os.listdir(workdir):
            shutil.chown(os.path.join(workdir, name), "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    process = subprocess.Popen(
        [*prefix, binary, os.path.join(workdir, "pgbouncer.ini")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", listen), timeout=0.5).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    err = process.stderr.read().decode() if process.stderr else ""
                    raise RuntimeError(f"pgbouncer did not start: {err[-500:]}") from None
                time.sleep(0.05)
        yield listen
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()
        shutil.rmtree(workdir, ignore_errors=True)
