"""The README's first command: `tenancy demo` runs the product end to end on the embedded PostgreSQL."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def _demo(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("tenancy", path=str(Path(sys.executable).parent)) or "tenancy"
    # No database settings, and none of libpq's either: the demo must not reach any other server.
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "TENANCY_", "WIX_", "PG"))
    }
    return subprocess.run(
        [exe, "demo", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.slow
def test_demo_runs_on_the_embedded_postgresql_with_row_level_security(tmp_path: Path) -> None:
    """In an empty folder with no DATABASE_URL, `tenancy demo` starts PostgreSQL in ./.tenancy,
    migrates and grants as production does, syncs 3 sites and shows one tenant's row through a
    tenant session of a non-superuser, non-BYPASSRLS role that raw SQL cannot see past; no SQLite
    file, no server left running."""
    first = _demo(tmp_path)
    assert first.returncode == 0, first.stderr
    out = first.stdout
    assert "1. embedded PostgreSQL 18." in out and "(unix socket only)" in out
    assert "migrated: alembic upgrade heads (tenancy's revisions) as the owner; tenancy grant" in out
    assert "3 synced (3 changed, 0 unchanged), 0 removed, 0 failed" in out
    assert "the session sees 1 tenant row(s) of 3 synced" in out
    assert "superuser=False, BYPASSRLS=False" in out
    assert "SELECT count(*) FROM tenants -> 1\n" in out
    assert "SELECT count(*) FROM tenants WHERE instance_id = '<site 2>' -> 0\n" in out
    assert "note:" not in out  # no "row-level security needs PostgreSQL" warning: it is PostgreSQL
    assert first.stderr == ""  # no log lines between the steps
    assert (tmp_path / ".tenancy" / "postgres" / "PG_VERSION").read_text().strip() == "18"
    assert not (tmp_path / ".tenancy" / "postgres" / "postmaster.pid").exists()  # stopped
    assert not list(tmp_path.glob("*.db"))
    second = _demo(tmp_path)  # the data directory is reused; each run makes a fresh database
    assert second.returncode == 0, second.stderr
    assert "3 synced (3 changed, 0 unchanged)" in second.stdout


def test_demo_on_an_explicit_sqlite_url_warns_that_the_database_layer_is_absent(tmp_path: Path) -> None:
    """SQLite only when asked for: the demo runs, and says row-level security is missing."""
    result = _demo(tmp_path, "--database-url", "sqlite:///lite.db", "--sites", "1")
    assert result.returncode == 0, result.stderr
    assert "note: row-level security needs PostgreSQL" in result.stdout
    assert (tmp_path / "lite.db").exists() and not (tmp_path / ".tenancy").exists()


def test_demo_never_prints_the_app_secret(tmp_path: Path) -> None:
    """The demo's output names no secret or token (the emulator's dummy ones included)."""
    result = _demo(tmp_path, "--sites", "1")
    assert result.returncode == 0, result.stderr
    text = result.stdout + result.stderr
    assert "OauthNG" not in text and "secret" not in text.lower()
