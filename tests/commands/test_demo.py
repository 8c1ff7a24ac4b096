"""The README's first command: `tenancy demo` runs the product end to end on the SQLite default."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, func, select

from tenancy.db.models import Tenant


def _demo(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("tenancy", path=str(Path(sys.executable).parent)) or "tenancy"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "TENANCY_", "WIX_"))}
    return subprocess.run(
        [exe, "demo", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_demo_migrates_syncs_and_opens_a_tenant_session_from_a_token(tmp_path: Path) -> None:
    """In an empty folder, `tenancy demo` creates tenancy.db, syncs 3 sites and shows one tenant's row."""
    first = _demo(tmp_path)
    assert first.returncode == 0, first.stderr
    out = first.stdout
    assert "1. migrated sqlite:///tenancy.db (tenancy's migrations, alembic upgrade heads)" in out
    assert "3 synced (3 changed, 0 unchanged), 0 removed, 0 failed" in out
    assert "the session sees 1 tenant row(s) of 3 synced" in out
    assert "note: row-level security needs PostgreSQL" in out
    assert first.stderr == ""  # no log lines between the steps
    engine = create_engine(f"sqlite:///{tmp_path / 'tenancy.db'}")
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Tenant)) == 3
        assert (
            conn.scalar(select(func.count()).select_from(Tenant).where(Tenant.last_synced_at.is_(None))) == 0
        )
    engine.dispose()
    second = _demo(tmp_path)
    assert second.returncode == 0, second.stderr
    assert "3 synced (0 changed, 3 unchanged)" in second.stdout


def test_demo_never_prints_the_app_secret(tmp_path: Path) -> None:
    """The demo's output names no secret or token (the emulator's dummy ones included)."""
    result = _demo(tmp_path, "--sites", "1")
    assert result.returncode == 0, result.stderr
    text = result.stdout + result.stderr
    assert "OauthNG" not in text and "secret" not in text.lower()
