"""The lifecycle on the command line, against the emulator: uninstall, sync, purge, export, and a
duplicated site that arrives with its data through `tenancy sync`."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tenancy.commands.main import main
from tenancy.emulator import Emulator
from tenancy.testing.postgres import Database
from tests.lifecycle.schema import counts, fingerprint, populate
from tests.sync_helpers import env_for


def _use(monkeypatch: pytest.MonkeyPatch, emu: Emulator | None, db: Database) -> None:
    if emu is not None:
        for name, value in env_for(emu, db.admin_url).items():
            if name.startswith(("WIX_", "TENANCY_", "DATABASE_URL")):
                monkeypatch.setenv(name, value)
    monkeypatch.setenv("TENANCY_ADMIN_DATABASE_URL", db.admin_url)


def _tenant(admin: Engine, iid: uuid.UUID) -> dict[str, object]:
    with admin.connect() as conn:
        return dict(
            conn.execute(text("SELECT * FROM tenants WHERE instance_id = :i"), {"i": iid}).one()._mapping
        )


def test_uninstall_sync_purge_reinstall_through_the_commands(
    admin: Engine, lifecycle_db: Database, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with Emulator(sites=2, seed=3) as emu:
        gone, kept = (uuid.UUID(i) for i in emu.instance_ids)
        with admin.begin() as conn:
            populate(conn, gone)
            populate(conn, kept)
        with admin.connect() as conn:
            before, untouched = counts(conn, gone), fingerprint(conn, kept)
        _use(monkeypatch, emu, lifecycle_db)
        emu.remove_app(str(gone))
        assert main(["sync", "--all", "--remove-after", "1"]) == 0
        assert _tenant(admin, gone)["status"] == "removed" and _tenant(admin, gone)["removed_at"] is not None
        capsys.readouterr()

        assert main(["purge", "--json"]) == 0  # within the default 30 days: nothing
        assert json.loads(capsys.readouterr().out)["tenants"] == []
        assert main(["purge", "--retention", "0s", "--dry-run", "--json"]) == 0
        dry = json.loads(capsys.readouterr().out)
        assert [(t["instance_id"], t["outcome"], t["counts"]) for t in dry["tenants"]] == [
            (str(gone), "would purge", before)
        ]
        assert main(["purge", "--retention", "0s", "--batch-size", "4"]) == 0
        assert f"{gone}: purged, {sum(before.values())} row(s)" in capsys.readouterr().out
        with admin.connect() as conn:
            assert set(counts(conn, gone).values()) == {0} and fingerprint(conn, kept) == untouched
        assert _tenant(admin, gone)["site_display_name"] is None

        emu.reinstall_app(str(gone))  # same instance id, as on Wix
        assert main(["sync", "--instance", str(gone)]) == 0
        row = _tenant(admin, gone)
        assert (
            row["status"] == "active" and row["removed_at"] is None and row["site_display_name"] is not None
        )
        with admin.connect() as conn:
            assert set(counts(conn, gone).values()) == {0}  # starts clean


def test_a_duplicated_site_arrives_with_its_data_through_sync(
    admin: Engine, lifecycle_db: Database, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with Emulator(sites=1, seed=4) as emu:
        origin = uuid.UUID(emu.instance_ids[0])
        with admin.begin() as conn:
            populate(conn, origin)
        with admin.connect() as conn:
            before = fingerprint(conn, origin)
        copy = uuid.UUID(emu.duplicate_site(str(origin)))
        _use(monkeypatch, emu, lifecycle_db)

        assert main(["sync", "--instance", str(copy), "--copy-skip-table", "audit_log"]) == 0

        row = _tenant(admin, copy)
        assert row["origin_instance_id"] == origin and row["copied_from_origin_at"] is not None
        with admin.connect() as conn:
            assert fingerprint(conn, origin) == before
            got, want = counts(conn, copy), counts(conn, origin)
        assert got == {**want, "audit_log": 0}
        capsys.readouterr()
        assert main(["copy", "--instance", str(copy), "--json"]) == 0  # a second trigger: nothing
        assert json.loads(capsys.readouterr().out)["copies"][0]["outcome"] == "already copied"


def test_export_and_erasure_on_request(
    admin: Engine,
    lifecycle_db: Database,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    iid = uuid.UUID(int=0x5)
    with admin.begin() as conn:
        populate(conn, iid)
    with admin.connect() as conn:
        before = counts(conn, iid)
    _use(monkeypatch, None, lifecycle_db)

    assert main(["export", "--instance", str(iid), "--output", str(tmp_path / "x")]) == 0
    manifest = json.loads((tmp_path / "x" / "manifest.json").read_text())
    assert {t: v["rows"] for t, v in manifest["tables"].items()} == before

    assert main(["purge", "--now"]) == 2
    assert "--now erases the tenants named by --instance" in capsys.readouterr().err
    assert main(["purge", "--instance", "not-a-uuid", "--now"]) == 2
    assert main(["purge", "--instance", str(iid), "--now", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["tenants"][0]["counts"] == before and report["ok"]
    with admin.connect() as conn:
        assert set(counts(conn, iid).values()) == {0}
