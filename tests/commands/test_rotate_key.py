"""`tenancy rotate-key`: old and new keys both verify while processes roll, then only the new."""

from __future__ import annotations

import os
import stat
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

import tenancy
from tenancy.commands.main import main
from tenancy.postgres.binding import newest_key, parse_binding_key
from tenancy.testing.postgres import Database
from tests.conftest import create_tenant_table, migrate

pytestmark = pytest.mark.postgres

T = uuid.UUID("77777777-7777-4777-8777-777777777777")


def test_a_process_with_the_old_key_works_during_the_roll_and_stops_after_finish(
    empty_pg_database: Database,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--start: old and new seals verify; --finish: the old key's process sees nothing, the new one all."""
    db = empty_pg_database
    admin = create_engine(db.admin_url)
    runtime = create_engine(db.runtime_url)
    migrate(admin, runtime_role=db.runtime)
    with admin.begin() as conn:
        create_tenant_table(conn, "rk_notes")
        conn.execute(text("INSERT INTO rk_notes VALUES (:t, 1)"), {"t": T})
        old = newest_key(conn)
    monkeypatch.setenv("TENANCY_ADMIN_DATABASE_URL", db.admin_url)
    monkeypatch.setenv("DATABASE_URL", db.runtime_url)

    def rows(key: object) -> int:
        sessions = tenancy.TenantSessionFactory(runtime, binding_key=key)  # type: ignore[arg-type]
        with sessions.for_instance(T) as session:
            return int(session.execute(text("SELECT count(*) FROM rk_notes")).scalar_one())

    try:
        assert old is not None and rows(old) == 1
        assert main(["rotate-key", "--start"]) == 0
        exported = tmp_path / "binding.key"
        assert main(["rotate-key", "--export", str(exported)]) == 0
        assert stat.S_IMODE(os.stat(exported).st_mode) == 0o600
        new = parse_binding_key(exported.read_text())
        assert new.key_id != old.key_id
        assert main(["rotate-key", "--export", str(exported)]) == 2  # never overwrites
        # While processes roll: both keys verify.
        assert rows(old) == 1 and rows(new) == 1
        # A process reading the key through the admin engine now gets the new one.
        assert tenancy.TenantSessionFactory(runtime, admin_engine=admin)._keys.key() == new
        assert main(["rotate-key", "--finish"]) == 0
        assert rows(old) == 0  # fail closed: the old key binds nothing any more
        assert rows(new) == 1
        out = capsys.readouterr().out
        assert new.secret.hex() not in out and old.secret.hex() not in out
    finally:
        runtime.dispose()
        admin.dispose()


def test_export_without_a_key_names_the_migration_command(
    empty_pg_database: Database,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No key in the table: exit 2, one line telling an app to run `alembic upgrade heads` (two branches)."""
    db = empty_pg_database
    admin = create_engine(db.admin_url)
    try:
        migrate(admin, runtime_role=db.runtime)
        with admin.begin() as conn:
            conn.execute(text("DELETE FROM tenancy.binding_keys"))
    finally:
        admin.dispose()
    monkeypatch.setenv("TENANCY_ADMIN_DATABASE_URL", db.admin_url)
    assert main(["rotate-key", "--export", str(tmp_path / "binding.key")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run `alembic upgrade heads` first" in err, err
    assert not (tmp_path / "binding.key").exists()
